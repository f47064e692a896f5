/* ipc/record.c - packing and validated unpacking of record payloads: each
 * payload is one command of the command-list codec (common/cmdlist.h). */
#include "ipc/record.h"

#include <errno.h>

#include "common/cmdlist.h"

int bg_rec_pack(struct bg_buf *out, const struct bg_str *v, uint32_t n)
{
	return bg_cmdlist_pack(out, v, n);
}

/* The fields of a payload that must end exactly after the last one. */
static int unpack(const void *payload, size_t len, struct bg_str *v,
		  uint32_t max, uint32_t *count)
{
	struct bg_str in = { payload, payload ? len : 0 };
	size_t off = 0;
	int rc = bg_cmdlist_unpack(in, &off, v, max, count);
	if (rc == 0 && off != len)
		rc = -EBADMSG;
	return rc;
}

int bg_rec_unpack(const void *payload, size_t len, struct bg_str *v, uint32_t n)
{
	uint32_t count;
	int rc = unpack(payload, len, v, n, &count);
	if (rc == 0 && count != n)
		rc = -EBADMSG;
	return rc;
}

int bg_rec_unpack_var(const void *payload, size_t len, struct bg_str *v,
		      uint32_t max, uint32_t *n_out)
{
	uint32_t count;
	int rc = unpack(payload, len, v, max, &count);
	if (rc == 0)
		*n_out = count;
	return rc;
}
