/* ipc/record.c - packing and validated unpacking of record payloads: a u32
 * count, then per field a u32 length and its bytes (host byte order). */
#include "ipc/record.h"

#include <errno.h>
#include <string.h>

#define U32 ((size_t)sizeof(uint32_t))

static int append_u32(struct bg_buf *out, uint32_t v)
{
	return bg_buf_append(out, &v, sizeof(v));
}

int bg_rec_pack(struct bg_buf *out, const struct bg_str *v, uint32_t n)
{
	size_t total = U32;
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].len > UINT32_MAX || U32 + v[i].len > UINT32_MAX - total)
			return -EMSGSIZE;
		total += U32 + v[i].len;
	}
	int rc = bg_buf_reserve(out, total);
	if (rc)
		return rc;
	rc = append_u32(out, n);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		rc = append_u32(out, (uint32_t)v[i].len);
		if (rc == 0)
			rc = bg_buf_append(out, v[i].p, v[i].len);
	}
	return rc;
}

/* Split the fields after the count into v[0..count); the payload must end
 * exactly after the last field. */
static int parse_fields(const uint8_t *p, size_t len, struct bg_str *v,
			uint32_t count)
{
	size_t off = U32;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t flen;
		if (len - off < U32)
			return -EBADMSG;
		memcpy(&flen, p + off, U32);
		off += U32;
		if (flen > len - off)
			return -EBADMSG;
		v[i] = (struct bg_str){ (const char *)p + off, flen };
		off += flen;
	}
	return off == len ? 0 : -EBADMSG;
}

static int read_count(const void *payload, size_t len, uint32_t *count)
{
	if (payload == NULL || len < U32)
		return -EBADMSG;
	memcpy(count, payload, U32);
	return 0;
}

int bg_rec_unpack(const void *payload, size_t len, struct bg_str *v,
		  uint32_t n)
{
	uint32_t count;
	int rc = read_count(payload, len, &count);
	if (rc)
		return rc;
	if (count != n)
		return -EBADMSG;
	return parse_fields(payload, len, v, count);
}

int bg_rec_unpack_var(const void *payload, size_t len, struct bg_str *v,
		      uint32_t max, uint32_t *n_out)
{
	uint32_t count;
	int rc = read_count(payload, len, &count);
	if (rc)
		return rc;
	if (count > max)
		return -EBADMSG;
	rc = parse_fields(payload, len, v, count);
	if (rc == 0)
		*n_out = count;
	return rc;
}
