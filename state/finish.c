/* state/finish.c - a journaled finish is a command list of
 * common/cmdlist.h (the codec bygated builds it with): u32 command count,
 * then per command u32 argc and per argument u32 length + bytes. The
 * decoder checks the whole blob before it hands out a single command. */
#include <errno.h>
#include <string.h>

#include "common/cmdlist.h"
#include "state/internal.h"

int bg_state_finish_add(struct bg_buf *b, int argc, const struct bg_str *argv)
{
	uint32_t n = 0;
	if (argc <= 0 || (b->len != 0 && b->len < 4))
		return -EINVAL;
	if (b->len == 0 && bg_buf_append(b, &n, sizeof(n)) != 0)
		return -ENOMEM;
	int rc = bg_cmdlist_pack(b, argv, (uint32_t)argc);
	if (rc)
		return rc == -EMSGSIZE ? -EINVAL : rc;
	memcpy(&n, b->p, sizeof(n));
	n++;
	memcpy(b->p, &n, sizeof(n));
	return 0;
}

int bg_state_finish_each(struct bg_str finish, bg_state_finish_fn fn, void *arg)
{
	uint32_t n, argc;
	struct bg_str argv[BG_CMDLIST_MAX_ARGS];
	if (bg_cmdlist_check(finish, &n) != 0)
		return BG_STATE_ECORRUPT;
	size_t off = 4;
	int rc = 0;
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		if (bg_cmdlist_unpack(finish, &off, argv, BG_CMDLIST_MAX_ARGS,
				      &argc) != 0)
			return BG_STATE_ECORRUPT;
		rc = fn(arg, (int)argc, argv);
	}
	return rc;
}
