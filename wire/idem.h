/* wire/idem.h - idempotency keys (docs/triggers.md): what a key may be and
 * where it lives. A key is scoped to the agent type a send targets
 * (wire/keys.h BG_KEY_IDEMPOTENCY): a HASH with the first send's
 * message_id, session_id, execution_id and at_ms (written by the sender
 * that claims the key, with a PEXPIRE of the TTL), and `entry`, the stream
 * entry id of the first entry carrying the key that a bygated ran. */
#ifndef BG_WIRE_IDEM_H
#define BG_WIRE_IDEM_H

#include <stdbool.h>

#include "common/buf.h"

#define BG_IDEM_KEY_MAX 200 /* bytes */

/* The metadata member a send carries its key in (WIRE 2.2 metadata). */
#define BG_IDEM_META "idempotency_key"

/* A usable key: 1..BG_IDEM_KEY_MAX bytes, each a printable ASCII character
 * other than space (0x21..0x7e). Anything else is refused, never
 * truncated or escaped: a key names a Redis key. */
bool bg_idem_key_ok(struct bg_str key);

#endif
