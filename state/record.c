/* state/record.c - the on-disk layouts of state/ (docs/state.md): keys of
 * length-prefixed components and version-1 records. Integers are
 * big-endian; every decoder checks each length against the bytes present
 * and answers BG_STATE_ECORRUPT instead of reading past them. */
#include <errno.h>
#include <string.h>

#include "state/internal.h"

/* ---- writing ---- */

static int put_be(struct bg_buf *b, uint64_t v, int bytes)
{
	uint8_t tmp[8];
	for (int i = 0; i < bytes; i++)
		tmp[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	return bg_buf_append(b, tmp, (size_t)bytes);
}

static int put_str32(struct bg_buf *b, struct bg_str s)
{
	if (s.len > UINT32_MAX)
		return -EINVAL;
	int rc = put_be(b, s.len, 4);
	return rc ? rc : bg_buf_append(b, s.p, s.len);
}

static int put_version(struct bg_buf *b)
{
	uint8_t v = BG_STATE_RECORD_V1;
	return bg_buf_append(b, &v, 1);
}

uint64_t bg_state_be64(const void *p)
{
	const uint8_t *u = p;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | u[i];
	return v;
}

int bg_state_key_add(struct bg_buf *key, struct bg_str part)
{
	if (part.len > UINT16_MAX)
		return -EINVAL;
	int rc = put_be(key, part.len, 2);
	return rc ? rc : bg_buf_append(key, part.p, part.len);
}

int bg_state_hist_key(struct bg_buf *key, int64_t finished_ms, uint64_t seq)
{
	int rc = put_be(key, finished_ms < 0 ? 0 : (uint64_t)finished_ms, 8);
	return rc ? rc : put_be(key, seq, 8);
}

/* ---- reading: a cursor that turns every overrun into `bad` ---- */

struct rd {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t rd_be(struct rd *r, int bytes)
{
	const uint8_t *p = rd_take(r, (size_t)bytes);
	uint64_t v = 0;
	for (int i = 0; p && i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static struct bg_str rd_str(struct rd *r, int len_bytes)
{
	size_t n = (size_t)rd_be(r, len_bytes);
	const uint8_t *p = rd_take(r, n);
	return (struct bg_str){ p ? (const char *)p : "", p ? n : 0 };
}

static struct rd rd_record(struct bg_str rec)
{
	struct rd r = { (const uint8_t *)rec.p, rec.len, 0, false };
	if (rd_be(&r, 1) != BG_STATE_RECORD_V1)
		r.bad = true;
	return r;
}

/* A record decodes when nothing overran and nothing is left over. */
static int rd_done(const struct rd *r)
{
	return r->bad || r->off != r->len ? BG_STATE_ECORRUPT : 0;
}

int bg_state_key_split(struct bg_str key, struct bg_str *parts, int n)
{
	struct rd r = { (const uint8_t *)key.p, key.len, 0, false };
	for (int i = 0; i < n; i++)
		parts[i] = rd_str(&r, 2);
	return rd_done(&r) ? -1 : 0;
}

/* ---- records ---- */

int bg_state_blob_encode(struct bg_buf *rec, struct bg_str val)
{
	int rc = put_version(rec);
	return rc ? rc : bg_buf_append(rec, val.p, val.len);
}

int bg_state_blob_decode(struct bg_str rec, struct bg_str *val)
{
	struct rd r = rd_record(rec);
	if (r.bad)
		return BG_STATE_ECORRUPT;
	*val = (struct bg_str){ rec.p + 1, rec.len - 1 };
	return 0;
}

/* exec v1: version, slot i32, pid i32, attempt u32, interrupted u32,
 * started_ms i64, first_seen_ms i64, then execution_id, message_id,
 * session_id, agent_type as u32 length + bytes. */
int bg_state_exec_encode(struct bg_buf *rec, const struct bg_state_exec *e)
{
	int rc = put_version(rec);
	rc = rc ? rc : put_be(rec, (uint32_t)e->slot, 4);
	rc = rc ? rc : put_be(rec, (uint32_t)e->pid, 4);
	rc = rc ? rc : put_be(rec, e->attempt, 4);
	rc = rc ? rc : put_be(rec, e->interrupted, 4);
	rc = rc ? rc : put_be(rec, (uint64_t)e->started_ms, 8);
	rc = rc ? rc : put_be(rec, (uint64_t)e->first_seen_ms, 8);
	rc = rc ? rc : put_str32(rec, e->execution_id);
	rc = rc ? rc : put_str32(rec, e->message_id);
	rc = rc ? rc : put_str32(rec, e->session_id);
	return rc ? rc : put_str32(rec, e->agent_type);
}

int bg_state_exec_decode(struct bg_str rec, struct bg_state_exec *e)
{
	struct rd r = rd_record(rec);
	e->slot = (int32_t)(uint32_t)rd_be(&r, 4);
	e->pid = (int32_t)(uint32_t)rd_be(&r, 4);
	e->attempt = (uint32_t)rd_be(&r, 4);
	e->interrupted = (uint32_t)rd_be(&r, 4);
	e->started_ms = (int64_t)rd_be(&r, 8);
	e->first_seen_ms = (int64_t)rd_be(&r, 8);
	e->execution_id = rd_str(&r, 4);
	e->message_id = rd_str(&r, 4);
	e->session_id = rd_str(&r, 4);
	e->agent_type = rd_str(&r, 4);
	return rd_done(&r);
}

/* hist v1: version, finished_ms i64, duration_ms i64, attempt u32, then
 * stream, entry_id, execution_id, message_id, session_id, agent_type,
 * status as u32 length + bytes. */
int bg_state_hist_encode(struct bg_buf *rec, const struct bg_state_hist *h)
{
	const struct bg_str *strs[] = { &h->stream,	  &h->entry_id,
					&h->execution_id, &h->message_id,
					&h->session_id,	  &h->agent_type,
					&h->status };
	int rc = put_version(rec);
	rc = rc ? rc : put_be(rec, (uint64_t)h->finished_ms, 8);
	rc = rc ? rc : put_be(rec, (uint64_t)h->duration_ms, 8);
	rc = rc ? rc : put_be(rec, h->attempt, 4);
	for (size_t i = 0; rc == 0 && i < sizeof strs / sizeof strs[0]; i++)
		rc = put_str32(rec, *strs[i]);
	return rc;
}

int bg_state_hist_decode(struct bg_str rec, struct bg_state_hist *h)
{
	struct bg_str *strs[] = { &h->stream,	    &h->entry_id,
				  &h->execution_id, &h->message_id,
				  &h->session_id,   &h->agent_type,
				  &h->status };
	struct rd r = rd_record(rec);
	h->finished_ms = (int64_t)rd_be(&r, 8);
	h->duration_ms = (int64_t)rd_be(&r, 8);
	h->attempt = (uint32_t)rd_be(&r, 4);
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		*strs[i] = rd_str(&r, 4);
	return rd_done(&r);
}

/* session v1: version, created_ms i64, last_used_ms i64, bytes i64, path
 * as u32 length + bytes; key = (agent type, user code, session id). */
int bg_state_session_encode(struct bg_buf *rec,
			    const struct bg_state_session *s)
{
	int rc = put_version(rec);
	rc = rc ? rc : put_be(rec, (uint64_t)s->created_ms, 8);
	rc = rc ? rc : put_be(rec, (uint64_t)s->last_used_ms, 8);
	rc = rc ? rc : put_be(rec, (uint64_t)s->bytes, 8);
	return rc ? rc : put_str32(rec, s->path);
}

int bg_state_session_decode(struct bg_str key, struct bg_str rec,
			    struct bg_state_session *s)
{
	struct bg_str parts[3];
	if (bg_state_key_split(key, parts, 3))
		return BG_STATE_ECORRUPT;
	s->agent_type = parts[0];
	s->user_code = parts[1];
	s->session_id = parts[2];
	struct rd r = rd_record(rec);
	s->created_ms = (int64_t)rd_be(&r, 8);
	s->last_used_ms = (int64_t)rd_be(&r, 8);
	s->bytes = (int64_t)rd_be(&r, 8);
	s->path = rd_str(&r, 4);
	return rd_done(&r);
}

/* suspects list: u32 count, then per suspect u32 alone_crashes, u8
 * running, stream and entry id as u32 length + bytes. */
int bg_state_suspects_encode(struct bg_buf *val,
			     const struct bg_state_suspect *v, size_t n)
{
	if (n > UINT32_MAX)
		return -EINVAL;
	int rc = put_be(val, n, 4);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = put_be(val, v[i].alone_crashes, 4);
		rc = rc ? rc : put_be(val, v[i].running ? 1 : 0, 1);
		rc = rc ? rc : put_str32(val, v[i].stream);
		rc = rc ? rc : put_str32(val, v[i].entry_id);
	}
	return rc;
}

/* Checks the whole list before the first call of fn. */
int bg_state_suspects_decode(struct bg_str val, bg_state_suspect_fn fn,
			     void *arg)
{
	for (int pass = 0; pass < 2; pass++) {
		struct rd r = { (const uint8_t *)val.p, val.len, 0, false };
		uint64_t n = rd_be(&r, 4);
		for (uint64_t i = 0; i < n && !r.bad; i++) {
			struct bg_state_suspect s;
			s.alone_crashes = (uint32_t)rd_be(&r, 4);
			uint64_t running = rd_be(&r, 1);
			s.running = running == 1;
			if (running > 1)
				r.bad = true;
			s.stream = rd_str(&r, 4);
			s.entry_id = rd_str(&r, 4);
			if (pass == 1 && !r.bad) {
				int rc = fn(arg, &s);
				if (rc)
					return rc;
			}
		}
		if (pass == 0 && rd_done(&r))
			return BG_STATE_ECORRUPT;
	}
	return 0;
}
