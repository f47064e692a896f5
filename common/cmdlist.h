/* common/cmdlist.h - the command-list codec: Redis commands as counted,
 * length-prefixed byte strings. One encoder and one validating decoder for
 * the handler outbox, the finish transaction and its LMDB journal (replayed
 * after an upgrade: the format is ABI, pinned by tests/unit/test_cmdlist.c)
 * and the ring record payloads (ipc/record.h, one command each).
 *
 *   command = u32 argc, then per argument u32 length + the bytes
 *   list    = u32 count, then count commands        (a "blob")
 *
 * Integers are in host byte order (little endian on every supported host).
 * Decoding never trusts a count or a length: each is checked against the
 * bytes that are left. Never logs, never exits. */
#ifndef BG_COMMON_CMDLIST_H
#define BG_COMMON_CMDLIST_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Arguments of one command of a list (the command name included). */
#define BG_CMDLIST_MAX_ARGS 8

/* ---- one command ---- */

/* Append the encoding of argv[0..argc) to out, all or nothing (argc 0 is
 * an empty command). 0, -EMSGSIZE (the encoding would not fit in u32
 * lengths) or -ENOMEM. */
int bg_cmdlist_pack(struct bg_buf *out, const struct bg_str *argv,
		    uint32_t argc);

/* Decode the command at in[*off]: argv[0..*argc) point into in, *off moves
 * past it. 0, or -EBADMSG (fewer bytes than it announces, or more than max
 * arguments); *off and *argc are then unchanged. */
int bg_cmdlist_unpack(struct bg_str in, size_t *off, struct bg_str *argv,
		      uint32_t max, uint32_t *argc);

/* ---- a list being built ---- */

/* buf always holds the serialised list of the n commands added (once the
 * first is), so it is ready to journal as it stands. The first failure is
 * kept in err and every later add or append is a no-op: the owner checks
 * err once, before using the list. A zeroed struct is an empty list. */
struct bg_cmdlist {
	struct bg_buf buf;
	uint32_t n;
	int err; /* 0, -ENOMEM, -EMSGSIZE, -E2BIG (argc), -EINVAL (argc < 1) */
};

/* Add one command of 1..BG_CMDLIST_MAX_ARGS arguments; the list is
 * unchanged when it fails. Returns err. The fault point cmdlist.add makes
 * the n-th add or append fail with -ENOMEM. */
int bg_cmdlist_add(struct bg_cmdlist *l, int argc, const struct bg_str *argv);

/* BG_CMDLIST_ADD(l, S("HSET"), key, field, value) */
#define BG_CMDLIST_ADD(l, ...)                                                 \
	bg_cmdlist_add((l),                                                    \
		       (int)(sizeof((const struct bg_str[]){ __VA_ARGS__ }) /  \
			     sizeof(struct bg_str)),                           \
		       (const struct bg_str[]){ __VA_ARGS__ })

/* Add src's commands after l's. src's error becomes l's: a list built from
 * a failed one fails too. Returns err. */
int bg_cmdlist_append(struct bg_cmdlist *l, const struct bg_cmdlist *src);

/* A point of a list to come back to. */
struct bg_cmdlist_mark {
	size_t len;
	uint32_t n;
};
struct bg_cmdlist_mark bg_cmdlist_tell(const struct bg_cmdlist *l);
/* Drop the commands added after m (taken from this list). err stays. */
void bg_cmdlist_rewind(struct bg_cmdlist *l, struct bg_cmdlist_mark m);

/* The serialised list (an empty list is a count of 0); it points into l. */
struct bg_str bg_cmdlist_blob(const struct bg_cmdlist *l);
/* Empty the list and clear err, keeping the memory. */
void bg_cmdlist_reset(struct bg_cmdlist *l);
void bg_cmdlist_free(struct bg_cmdlist *l);

/* ---- a serialised list ---- */

struct bg_cmdlist_iter {
	struct bg_str blob;
	size_t off;
	uint32_t left;
};

/* Start reading blob. 0, or -EBADMSG (no count). */
int bg_cmdlist_iter_init(struct bg_cmdlist_iter *it, struct bg_str blob);

/* The next command: argv[0..*argc) and lens point into the blob. 1, 0
 * after the last one when the blob ends exactly there, or -EBADMSG (a
 * command of no argument or more than max, a length past the end, bytes
 * left after the last command). */
int bg_cmdlist_next(struct bg_cmdlist_iter *it, int *argc, const char **argv,
		    size_t *lens, int max);

/* 0 and *n = its count when every command of blob has 1 to
 * BG_CMDLIST_MAX_ARGS arguments and the blob ends after the last one;
 * -EBADMSG otherwise. */
int bg_cmdlist_check(struct bg_str blob, uint32_t *n);

#endif
