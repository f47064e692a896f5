/* supervisor/idem.h - the idempotency key of a picked-up entry honoured
 * before the claim of its execution (docs/client.md, "Idempotency keys"):
 * of the entries whose ASK_AGENT carries one key for one agent type, only
 * the first a bygated takes runs; the others are acknowledged unrun. */
#ifndef BG_SUPERVISOR_IDEM_H
#define BG_SUPERVISOR_IDEM_H

#include <stdbool.h>

struct bg_daemon;
struct bg_job;

/* Check t's key, if it carries a usable one (an ASK_AGENT with a string
 * header.metadata.idempotency_key that bg_idem_key_ok accepts), against
 * the key's HASH in one script: the entry the HASH names, or none yet
 * with the same (or no) first message, is the first and `go` continues it
 * (the HASH then names it); any other is a copy and t ends
 * BG_END_DUPLICATE. true: the check was sent (t continues in go or ends
 * there). false: t carries no key, or an unusable one (logged WARN) or is
 * not an ASK_AGENT: the caller goes on at once, as for any entry. */
bool bg_idem_check(struct bg_daemon *d, struct bg_job *t,
		   void (*go)(struct bg_daemon *, struct bg_job *));

#endif
