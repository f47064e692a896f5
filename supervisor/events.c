/* supervisor/events.c - what an attempt streams to its session (DESIGN
 * 4.3, WIRE 3): every chunk, state, artifact and sub_step a child sends is
 * published at once with XADD on the session's data stream, outside the
 * finish transaction, within the per-attempt caps; a retried or re-run
 * attempt announces itself first. */
#include <stdio.h>
#include <string.h>

#include "ipc/record.h"
#include "supervisor/daemon.h"
#include "supervisor/events.h"
#include "supervisor/log.h"
#include "wire/event.h"
#include "wire/ids.h"

static void on_event_written(struct bg_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	(void)priv;
	if (r && r->type == REDIS_REPLY_ERROR)
		bg_warn("event XADD refused: %s", r->str);
}

static bool event_kind(struct bg_str k, enum bg_event_kind *out)
{
	static const struct {
		const char *name;
		enum bg_event_kind kind;
	} kinds[] = { { "chunk", BG_EVENT_CHUNK },
		      { "state", BG_EVENT_STATE },
		      { "artifact", BG_EVENT_ARTIFACT },
		      { "sub_step", BG_EVENT_SUB_STEP } };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (bg_str_eq(k, kinds[i].name)) {
			*out = kinds[i].kind;
			return true;
		}
	return false;
}

void bg_events_take(struct bg_daemon *d, struct bg_job *t, const uint8_t *p,
		    size_t len)
{
	struct bg_str f[BG_EF__COUNT];
	enum bg_event_kind kind;
	if (bg_rec_unpack(p, len, f, BG_EF__COUNT) ||
	    !event_kind(f[BG_EF_KIND], &kind)) {
		struct bg_log_ids ids = bg_job_log_ids(t);
		bg_log_task(BG_LOG_WARN, &ids,
			    "malformed event record dropped");
		return;
	}
	t->run.events++;
	t->run.event_bytes += f[BG_EF_CONTENT].len;
	if (t->run.events > (uint64_t)d->cfg->max_events_per_task ||
	    t->run.event_bytes > (uint64_t)d->cfg->max_event_bytes_per_task) {
		if (!t->run.events_capped) {
			struct bg_log_ids ids = bg_job_log_ids(t);
			bg_log_task(BG_LOG_WARN, &ids,
				    "task exceeded max_events_per_task or "
				    "max_event_bytes_per_task; further events "
				    "dropped and the task will fail");
		}
		t->run.events_capped = true;
		return;
	}
	char uuid[33], sub_id[32];
	bg_uuid_hex(uuid, true);
	struct bg_event_ctx ctx;
	bg_job_event_ctx(t, &ctx);
	struct bg_event ev = { .kind = kind,
			       .content = f[BG_EF_CONTENT],
			       .event_type = f[BG_EF_EVENT_TYPE],
			       .content_type = f[BG_EF_CONTENT_TYPE],
			       .metadata = f[BG_EF_METADATA],
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	if (kind == BG_EVENT_SUB_STEP) {
		bg_id_new(sub_id, sizeof(sub_id), "msg-");
		ev.message_id = bg_str_c(sub_id);
	}
	struct bg_str et = bg_event_type_of(&ctx, &ev);
	if (!t->id.has_source_agent && bg_str_eq(et, "appStreamResponse"))
		t->run.end_marker_emitted = true;
	bg_events_publish(d, t, &ev);
}

/* A streamed event goes out at once, outside the finish transaction. */
void bg_events_publish(struct bg_daemon *d, struct bg_job *t,
		       const struct bg_event *ev)
{
	struct bg_event_ctx ctx;
	bg_job_event_ctx(t, &ctx);
	struct bg_buf out = { 0 };
	if (bg_event_build(&out, &ctx, ev) == 0) {
		const char *argv[5] = { "XADD", t->id.data_key, "*", "data",
					out.p };
		size_t lens[5] = { 4, strlen(t->id.data_key), 1, 4, out.len };
		bg_rconn_cmd(d->wr, on_event_written, NULL, 0, 5, argv, lens);
		bg_expire_once(d, t->id.data_key);
	}
	bg_buf_free(&out);
}

/* A retried attempt first says so on the session stream (DESIGN 4.3):
 * "RETRY <n>" for the n-th retry, "RERUN <n>" for the n-th re-run of an
 * attempt interrupted by the death of a shared child (not counted). */
void bg_events_announce_retry(struct bg_daemon *d, struct bg_job *t, bool rerun)
{
	char text[32], uuid[33];
	snprintf(text, sizeof(text), rerun ? "RERUN %d" : "RETRY %d",
		 rerun ? t->run.reruns : t->run.attempt - 1);
	bg_uuid_hex(uuid, true);
	struct bg_event ev = { .kind = BG_EVENT_STATE,
			       .content = bg_str_c(text),
			       .now_ms = bg_now_ms(),
			       .uuid = { uuid, 32 } };
	bg_events_publish(d, t, &ev);
}
