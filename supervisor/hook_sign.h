/* supervisor/hook_sign.h - the signature of a webhook request
 * (docs/triggers-webhooks.md): HMAC-SHA256 over "<timestamp>.<raw body>"
 * with the webhook's secret, sent as "sha256=<64 hex>" (or the bare hex)
 * beside a Unix-seconds timestamp that must be within the tolerance of
 * now. Pure: no I/O, no logging, no clock. */
#ifndef BG_SUPERVISOR_HOOK_SIGN_H
#define BG_SUPERVISOR_HOOK_SIGN_H

#include <stdint.h>

#include "common/buf.h"

#define BG_HOOK_SIGN_HEX 64 /* hex digits of a SHA-256 MAC */

enum bg_hook_sign_verdict {
	BG_HOOK_SIGN_OK,
	BG_HOOK_SIGN_NO_TIMESTAMP,  /* the timestamp header is missing */
	BG_HOOK_SIGN_BAD_TIMESTAMP, /* not 1..15 decimal digits */
	BG_HOOK_SIGN_STALE,	    /* |now - timestamp| > tolerance */
	BG_HOOK_SIGN_NO_SIGNATURE,  /* the signature header is missing */
	BG_HOOK_SIGN_BAD_SIGNATURE, /* not [sha256=]<64 hex digits> */
	BG_HOOK_SIGN_MISMATCH,	    /* the MAC differs */
	BG_HOOK_SIGN_NO_SECRET,	    /* the webhook has an empty secret */
	BG_HOOK_SIGN_FAILED,	    /* libcrypto could not compute the MAC */
};

/* What a signed request carries. timestamp and signature are the header
 * values as received (NULL when the header is absent); body is the raw
 * request body. */
struct bg_hook_signed {
	const char *timestamp;
	const char *signature;
	struct bg_str body;
};

/* Check req against secret at now_s (Unix seconds) with a window of
 * tolerance_s either side. The checks run in the enum's order and the
 * first that fails is returned; the MAC is compared in constant time. */
enum bg_hook_sign_verdict bg_hook_sign_check(struct bg_str secret,
					     const struct bg_hook_signed *req,
					     int64_t now_s, int tolerance_s);

/* The lowercase hex HMAC-SHA256(secret, timestamp "." body) into hex
 * (NUL-terminated). 0, or -EINVAL (empty secret) / -EIO (libcrypto). */
int bg_hook_sign_compute(struct bg_str secret, struct bg_str timestamp,
			 struct bg_str body, char hex[BG_HOOK_SIGN_HEX + 1]);

/* A short sentence for the verdict, safe to send to the caller: it names
 * the failed check, never the secret or the expected MAC. */
const char *bg_hook_sign_reason(enum bg_hook_sign_verdict v);

#endif
