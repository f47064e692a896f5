/* state/finish.c - the byte format of a journaled finish: the commands of
 * one MULTI/EXEC as little-endian u32 command count, then per command u32
 * argc and per argument u32 length + bytes. The decoder checks the whole
 * blob before it hands out a single command. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int bg_state_finish_add(struct bg_buf *b, int argc, const struct bg_str *argv)
{
	if (argc <= 0 || (b->len != 0 && b->len < 4))
		return -EINVAL;
	size_t need = 4 + 4 * (size_t)argc + (b->len ? 0 : 4);
	for (int i = 0; i < argc; i++) {
		if (argv[i].len > UINT32_MAX)
			return -EINVAL;
		need += argv[i].len;
	}
	int rc = bg_buf_reserve(b, need);
	if (rc)
		return rc;
	uint8_t n[4] = { 0 };
	if (b->len == 0)
		bg_buf_append(b, n, 4);
	put_le32(n, (uint32_t)argc);
	bg_buf_append(b, n, 4);
	for (int i = 0; i < argc; i++) {
		put_le32(n, (uint32_t)argv[i].len);
		bg_buf_append(b, n, 4);
		bg_buf_append(b, argv[i].p, argv[i].len);
	}
	put_le32((uint8_t *)b->p, le32((uint8_t *)b->p) + 1);
	return 0;
}

struct cur {
	const uint8_t *p;
	size_t left;
};

static bool take32(struct cur *c, uint32_t *v)
{
	if (c->left < 4)
		return false;
	*v = le32(c->p);
	c->p += 4;
	c->left -= 4;
	return true;
}

static bool skip(struct cur *c, size_t n)
{
	if (c->left < n)
		return false;
	c->p += n;
	c->left -= n;
	return true;
}

/* The first pass: every length within the blob, nothing left over, every
 * command with at least one argument; *max_argc for the second pass. */
static int check(struct bg_str finish, uint32_t *max_argc)
{
	struct cur c = { (const uint8_t *)finish.p, finish.len };
	uint32_t count, argc, len;
	*max_argc = 0;
	if (!take32(&c, &count))
		return BG_STATE_ECORRUPT;
	for (uint32_t i = 0; i < count; i++) {
		if (!take32(&c, &argc) || argc == 0 || argc > c.left / 4)
			return BG_STATE_ECORRUPT;
		for (uint32_t j = 0; j < argc; j++)
			if (!take32(&c, &len) || !skip(&c, len))
				return BG_STATE_ECORRUPT;
		if (argc > *max_argc)
			*max_argc = argc;
	}
	return c.left ? BG_STATE_ECORRUPT : 0;
}

int bg_state_finish_each(struct bg_str finish, bg_state_finish_fn fn, void *arg)
{
	uint32_t max_argc, count = 0, argc = 0, len = 0;
	int rc = check(finish, &max_argc);
	if (rc)
		return rc;
	struct bg_str *argv = calloc(max_argc ? max_argc : 1, sizeof *argv);
	if (argv == NULL)
		return -ENOMEM;
	struct cur c = { (const uint8_t *)finish.p, finish.len };
	take32(&c, &count);
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		take32(&c, &argc);
		for (uint32_t j = 0; j < argc; j++) {
			take32(&c, &len);
			argv[j] = (struct bg_str){ (const char *)c.p, len };
			skip(&c, len);
		}
		rc = fn(arg, (int)argc, argv);
	}
	free(argv);
	return rc;
}
