/* wire/ids.h - the by-framework id formats (WIRE 1.2 "ID formats") and the
 * client dispatch span id (WIRE 2.2). Random ids come from getrandom()
 * (through a per-thread pool emptied in a fork child, ids.c);
 * ids are opaque strings: nothing here parses them. */
#ifndef BG_WIRE_IDS_H
#define BG_WIRE_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/* Length of prefix + 8 hex + NUL: the cap bg_id_new needs. */
#define BG_ID_CAP(prefix) (sizeof(prefix) + 8)

/* Write `prefix` followed by 8 random lowercase hex digits and a NUL
 * ("msg-", "exec-", "tg-", "msg-cancel-", "reload-"). 0, -ENOSPC when cap
 * is smaller than strlen(prefix) + 9, -EIO when getrandom() fails. */
int bg_id_new(char *out, size_t cap, const char *prefix);

/* A random (version 4) UUID as 32 hex digits and a NUL, lowercase (trace
 * ids, admin message ids) or uppercase (the SSE data.id, WIRE 3.3).
 * 0 or -EIO. */
int bg_uuid_hex(char out[33], bool upper);

/* The first 16 lowercase hex digits of md5(s[0..n)) and a NUL: by-framework's
 * str_to_uint64 span ids, e.g. md5("<message_id>:client.dispatch").
 * 0 or -ENOMEM (libcrypto failure). */
int bg_span_id16(char out[17], const char *s, size_t n);

/* The EVALSHA name of a Lua script: SHA-1 of text as 40 lowercase hex
 * digits and a NUL. 0 or -ENOMEM (libcrypto failure). */
int bg_script_sha1(char out[41], const char *text);

/* Same for the concatenation id + suffix ("msg-1a2b3c4d" ":client.dispatch"). */
int bg_span_id16_of(char out[17], struct bg_str id, const char *suffix);

#endif
