/* common/cmdlist.c - the command-list codec (cmdlist.h): counted lists of
 * length-prefixed byte strings, built with a sticky error and read back
 * with every count and length checked against the bytes left. */
#include "common/cmdlist.h"

#include <errno.h>
#include <string.h>

#include "common/fault.h"

#define U32 ((size_t)sizeof(uint32_t))

static void put_u32(char *p, uint32_t v)
{
	memcpy(p, &v, U32);
}

static int take_u32(struct bg_str in, size_t *off, uint32_t *v)
{
	if (*off > in.len || in.len - *off < U32)
		return -EBADMSG;
	memcpy(v, in.p + *off, U32);
	*off += U32;
	return 0;
}

/* The size of argv's encoding, or 0 when a length or the whole would not
 * fit in a u32. */
static size_t packed_size(const struct bg_str *argv, uint32_t argc)
{
	size_t total = U32;
	for (uint32_t i = 0; i < argc; i++) {
		if (argv[i].len > UINT32_MAX ||
		    U32 + argv[i].len > UINT32_MAX - total)
			return 0;
		total += U32 + argv[i].len;
	}
	return total;
}

/* Write argv's encoding (packed_size bytes) at p. */
static void write_cmd(char *p, const struct bg_str *argv, uint32_t argc)
{
	put_u32(p, argc);
	p += U32;
	for (uint32_t i = 0; i < argc; i++) {
		put_u32(p, (uint32_t)argv[i].len);
		p += U32;
		if (argv[i].len)
			memcpy(p, argv[i].p, argv[i].len);
		p += argv[i].len;
	}
}

int bg_cmdlist_pack(struct bg_buf *out, const struct bg_str *argv,
		    uint32_t argc)
{
	size_t size = packed_size(argv, argc);
	if (size == 0)
		return -EMSGSIZE;
	int rc = bg_buf_reserve(out, size);
	if (rc)
		return rc;
	write_cmd(out->p + out->len, argv, argc);
	out->len += size;
	out->p[out->len] = '\0';
	return 0;
}

/* Decode the command at in[*off] of min..max arguments into v, or into
 * argv and lens when v is NULL. */
static int parse_cmd(struct bg_str in, size_t *off, uint32_t min, uint32_t max,
		     uint32_t *argc, struct bg_str *v, const char **argv,
		     size_t *lens)
{
	size_t at = *off;
	uint32_t n;
	if (take_u32(in, &at, &n) || n < min || n > max)
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len;
		if (take_u32(in, &at, &len) || len > in.len - at)
			return -EBADMSG;
		if (v) {
			v[i] = (struct bg_str){ in.p + at, len };
		} else {
			argv[i] = in.p + at;
			lens[i] = len;
		}
		at += len;
	}
	*off = at;
	*argc = n;
	return 0;
}

int bg_cmdlist_unpack(struct bg_str in, size_t *off, struct bg_str *argv,
		      uint32_t max, uint32_t *argc)
{
	return parse_cmd(in, off, 0, max, argc, argv, NULL, NULL);
}

/* ---- a list being built ---- */

static int fail(struct bg_cmdlist *l, int err)
{
	l->err = err;
	return err;
}

/* Room for extra more bytes, and the count in front of the first command;
 * the caller then writes at l->buf.p + l->buf.len. */
static int grow(struct bg_cmdlist *l, size_t extra)
{
	if (bg_fault_hit("cmdlist.add"))
		return -ENOMEM;
	size_t head = l->buf.len ? 0 : U32;
	int rc = bg_buf_reserve(&l->buf, head + extra);
	if (rc == 0 && head) {
		put_u32(l->buf.p, 0);
		l->buf.len = U32;
	}
	return rc;
}

/* The bytes of extra more commands are written: count them. */
static void grown(struct bg_cmdlist *l, size_t size, uint32_t extra)
{
	l->buf.len += size;
	l->buf.p[l->buf.len] = '\0';
	l->n += extra;
	put_u32(l->buf.p, l->n);
}

int bg_cmdlist_add(struct bg_cmdlist *l, int argc, const struct bg_str *argv)
{
	if (l->err)
		return l->err;
	if (argc < 1)
		return fail(l, -EINVAL);
	if (argc > BG_CMDLIST_MAX_ARGS)
		return fail(l, -E2BIG);
	size_t size = packed_size(argv, (uint32_t)argc);
	if (size == 0 || l->n == UINT32_MAX)
		return fail(l, -EMSGSIZE);
	int rc = grow(l, size);
	if (rc)
		return fail(l, rc);
	write_cmd(l->buf.p + l->buf.len, argv, (uint32_t)argc);
	grown(l, size, 1);
	return 0;
}

int bg_cmdlist_append(struct bg_cmdlist *l, const struct bg_cmdlist *src)
{
	if (l->err)
		return l->err;
	if (src->err)
		return fail(l, src->err);
	uint32_t n = src->n;
	if (n == 0)
		return 0;
	if (n > UINT32_MAX - l->n)
		return fail(l, -EMSGSIZE);
	size_t size = src->buf.len - U32;
	int rc = grow(l, size);
	if (rc)
		return fail(l, rc);
	memcpy(l->buf.p + l->buf.len, src->buf.p + U32, size);
	grown(l, size, n);
	return 0;
}

struct bg_cmdlist_mark bg_cmdlist_tell(const struct bg_cmdlist *l)
{
	return (struct bg_cmdlist_mark){ l->buf.len, l->n };
}

void bg_cmdlist_rewind(struct bg_cmdlist *l, struct bg_cmdlist_mark m)
{
	if (m.len > l->buf.len || m.n > l->n)
		return; /* not a point of this list */
	l->buf.len = m.len;
	l->n = m.n;
	if (l->buf.p)
		l->buf.p[m.len] = '\0';
	if (m.len >= U32)
		put_u32(l->buf.p, m.n);
}

struct bg_str bg_cmdlist_blob(const struct bg_cmdlist *l)
{
	static const char no_commands[sizeof(uint32_t)];
	if (l->buf.len == 0)
		return (struct bg_str){ no_commands, U32 };
	return (struct bg_str){ l->buf.p, l->buf.len };
}

void bg_cmdlist_reset(struct bg_cmdlist *l)
{
	bg_buf_reset(&l->buf);
	l->n = 0;
	l->err = 0;
}

void bg_cmdlist_free(struct bg_cmdlist *l)
{
	bg_buf_free(&l->buf);
	l->n = 0;
	l->err = 0;
}

/* ---- a serialised list ---- */

int bg_cmdlist_iter_init(struct bg_cmdlist_iter *it, struct bg_str blob)
{
	*it = (struct bg_cmdlist_iter){ .blob = blob };
	if (blob.p == NULL)
		it->blob.len = 0;
	return take_u32(it->blob, &it->off, &it->left);
}

int bg_cmdlist_next(struct bg_cmdlist_iter *it, int *argc, const char **argv,
		    size_t *lens, int max)
{
	if (it->left == 0)
		return it->off == it->blob.len ? 0 : -EBADMSG;
	uint32_t n;
	int rc = parse_cmd(it->blob, &it->off, 1, max > 0 ? (uint32_t)max : 0,
			   &n, NULL, argv, lens);
	if (rc)
		return rc;
	it->left--;
	*argc = (int)n;
	return 1;
}

int bg_cmdlist_check(struct bg_str blob, uint32_t *n)
{
	struct bg_cmdlist_iter it;
	const char *argv[BG_CMDLIST_MAX_ARGS];
	size_t lens[BG_CMDLIST_MAX_ARGS];
	int argc;
	int rc = bg_cmdlist_iter_init(&it, blob);
	uint32_t count = it.left;
	while (rc == 0 && (rc = bg_cmdlist_next(&it, &argc, argv, lens,
						BG_CMDLIST_MAX_ARGS)) > 0)
		rc = 0;
	if (rc == 0)
		*n = count;
	return rc;
}
