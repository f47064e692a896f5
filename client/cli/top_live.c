/* client/cli/top_live.c - `bygate top`'s live frame (top_frame.h): workers,
 * queues, lanes and failures from Redis, pools and children from each
 * bygated's /status, rates from two samples. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cli/cli.h"
#include "client/cli/top_frame.h"

static json_t *find_by(json_t *arr, const char *key, const char *v)
{
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
		if (!strcmp(top_str(o, key), v))
			return o;
	return NULL;
}

static int64_t sum_done(const json_t *done)
{
	const char *k;
	json_t *v;
	int64_t n = 0;
	json_object_foreach((json_t *)done, k, v)
		if (strcmp(k, "acked"))
			n += (int64_t)json_integer_value(v);
	return n;
}

/* Fold one bygated's /status into the frame: its worker row, its
 * children, its per-agent-type running, done and percentiles. */
static void fold_status(json_t *frame, json_t *st, const char *hostport)
{
	json_t *workers = json_object_get(frame, "workers");
	const char *id = top_str(st, "worker_id");
	json_t *w = find_by(workers, "worker_id", id);
	if (w == NULL) {
		w = json_pack("{s:s,s:n,s:s}", "worker_id", id, "online",
			      "lifecycle", top_str(st, "lifecycle"));
		json_array_append_new(workers, w);
	}
	json_t *pool = json_object_get(st, "pool");
	json_object_set(w, "pool", pool);
	json_object_set(w, "generation", json_object_get(pool, "generation"));
	json_object_set(w, "tasks", json_object_get(st, "tasks"));
	json_object_set_new(w, "http", json_string(hostport));
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(st, "children"), i, c) {
		json_object_set_new(c, "worker_id", json_string(id));
		json_array_append(json_object_get(frame, "children"), c);
	}
	json_t *types = json_object_get(frame, "agent_types");
	json_array_foreach(json_object_get(st, "agent_types"), i, c) {
		const char *name = top_str(c, "agent_type");
		json_t *t = find_by(types, "agent_type", name);
		if (t == NULL) {
			t = json_pack("{s:s}", "agent_type", name);
			json_array_append_new(types, t);
		}
		json_t *done = json_object_get(c, "done");
		int64_t failed =
			json_integer_value(json_object_get(done, "failed")) +
			json_integer_value(
				json_object_get(done, "deadlettered"));
		json_object_set_new(
			t, "running",
			json_integer((json_int_t)top_num(t, "running") +
				     json_integer_value(
					     json_object_get(c, "running"))));
		json_object_set_new(
			t, "done",
			json_integer((json_int_t)top_num(t, "done") +
				     sum_done(done)));
		json_object_set_new(
			t, "failed",
			json_integer((json_int_t)top_num(t, "failed") +
				     failed));
		const char *q[] = { "run_ms_p50", "run_ms_p99" };
		for (int k = 0; k < 2; k++)
			if (top_known(c, q[k]) &&
			    (!top_known(t, q[k]) ||
			     top_num(c, q[k]) > top_num(t, q[k])))
				json_object_set(t, q[k],
						json_object_get(c, q[k]));
	}
}

/* A worker whose /status was not read: its active executions (WIRE 5.9,
 * at most 100) stand for its children, without slot or pid (a RUNNING
 * record may still wait in bygated's ready queue); they also give the
 * agent types' running count. */
static void children_from_redis(json_t *frame, const json_t *w,
				const json_t *info)
{
	json_t *out = json_object_get(frame, "children");
	int64_t now = (int64_t)top_num(frame, "now_ms");
	size_t j;
	json_t *e;
	json_array_foreach(json_object_get(info, "active_executions"), j, e) {
		const char *type = top_str(e, "target_agent_type");
		json_t *o = json_pack("{s:s,s:n,s:n,s:s,s:s,s:s,s:s}",
				      "worker_id", top_str(w, "worker_id"),
				      "slot", "pid", "state",
				      top_str(e, "status"), "agent_type", type,
				      "message_id", top_str(e, "message_id"),
				      "session_id", top_str(e, "session_id"));
		if (o == NULL)
			continue;
		if (top_num(e, "started_at") > 0)
			json_object_set_new(
				o, "elapsed_ms",
				json_integer((
					json_int_t)(now -
						    top_num(e, "started_at"))));
		json_array_append_new(out, o);
		json_t *t = find_by(json_object_get(frame, "agent_types"),
				    "agent_type", type);
		if (t && !strcmp(top_str(e, "status"), "RUNNING"))
			json_object_set_new(
				t, "running",
				json_integer((json_int_t)top_num(t, "running") +
					     1));
	}
}

/* From each worker's registry entry (bg_client_worker_info): the recent
 * failures, the finishes its history index keeps (the last 20) that did
 * not succeed; and, for a worker without a /status, its children. */
static void add_worker_info(struct top *tp, json_t *frame)
{
	json_t *out = json_object_get(frame, "failures");
	size_t i, j;
	json_t *w, *e;
	json_array_foreach(json_object_get(frame, "workers"), i, w) {
		char *raw = NULL;
		if (bg_client_worker_info(tp->cli->client,
					  top_str(w, "worker_id"), &raw) != 0)
			continue;
		json_t *info = json_loads(raw, 0, NULL);
		free(raw);
		if (!*top_str(w, "http") &&
		    json_is_true(json_object_get(w, "online")))
			children_from_redis(frame, w, info);
		json_array_foreach(json_object_get(info, "recent_executions"),
				   j, e) {
			const char *st = top_str(e, "status");
			if (strcmp(st, "FAILED") && strcmp(st, "TIMEOUT"))
				continue;
			const char *err = top_str(e, "error_message");
			if (!*err)
				err = top_str(e, "error");
			json_array_append_new(
				out,
				json_pack("{s:I,s:s,s:s,s:s,s:s}", "ts_ms",
					  (json_int_t)top_num(e, "finished_at"),
					  "agent_type",
					  top_str(e, "target_agent_type"),
					  "message_id",
					  top_str(e, "message_id"), "status",
					  st, "error", err));
		}
		json_decref(info);
	}
}

/* Lanes (docs/scheduling.md): each agent type's lanes with entries
 * waiting in the fleet's ready set, from bg_client_lanes. */
static void add_lanes(struct top *tp, json_t *frame)
{
	char *raw = NULL;
	if (bg_client_lanes(tp->cli->client, NULL, &raw) != 0)
		return;
	json_t *doc = json_loads(raw, 0, NULL), *out = json_array();
	free(raw);
	size_t i, j;
	json_t *t, *l;
	json_array_foreach(json_object_get(doc, "agent_types"), i, t) {
		json_array_foreach(json_object_get(t, "lanes"), j, l) {
			json_t *o = json_pack(
				"{s:s,s:s,s:O,s:O,s:O}", "agent_type",
				top_str(t, "agent_type"), "lane",
				top_str(l, "lane"), "waiting",
				json_object_get(l, "waiting"), "oldest_age_ms",
				json_object_get(l, "oldest_age_ms")
					? json_object_get(l, "oldest_age_ms")
					: json_null(),
				"fleet_running",
				json_object_get(l, "fleet_running")
					? json_object_get(l, "fleet_running")
					: json_null());
			if (o)
				json_array_append_new(out, o);
		}
	}
	json_decref(doc);
	json_object_set_new(frame, "lanes", out);
}

/* Rates: the agent type's finished count (from /status) or, without
 * one, the entries its group read and acknowledged, against the previous
 * sample. */
static void add_rates(struct top *tp, json_t *frame)
{
	int64_t now = cli_mono_ms();
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(frame, "agent_types"), i, t) {
		double total;
		if (top_known(t, "done"))
			total = top_num(t, "done");
		else if (top_known(t, "entries_read") &&
			 top_known(t, "pending"))
			total = top_num(t, "entries_read") -
				top_num(t, "pending");
		else
			continue;
		const char *name = top_str(t, "agent_type");
		json_t *p = json_object_get(tp->prev, name);
		if (p) {
			double dt =
				(double)(now - json_integer_value(
						       json_array_get(p, 1))) /
				1000.0;
			double d =
				total - json_number_value(json_array_get(p, 0));
			if (dt > 0)
				json_object_set_new(t, "rate",
						    json_real(d > 0 ? d / dt
								    : 0));
		}
		json_object_set_new(tp->prev, name,
				    json_pack("[f,I]", total, (json_int_t)now));
	}
}

json_t *top_sample_live(struct top *tp)
{
	char *raw = NULL;
	json_t *workers = NULL, *queues = NULL;
	if (bg_client_workers(tp->cli->client, &raw) == 0)
		workers = json_loads(raw, 0, NULL);
	free(raw);
	raw = NULL;
	if (bg_client_queues(tp->cli->client, NULL, &raw) == 0)
		queues = json_loads(raw, 0, NULL);
	free(raw);
	json_t *frame =
		json_pack("{s:s,s:I,s:[],s:[],s:[],s:[]}", "source", "live",
			  "now_ms", (json_int_t)((int64_t)time(NULL) * 1000),
			  "workers", "agent_types", "children", "failures");
	if (frame == NULL)
		goto out;
	size_t i;
	json_t *o;
	json_array_foreach(workers, i, o) {
		json_array_append_new(
			json_object_get(frame, "workers"),
			json_pack("{s:s,s:O,s:s,s:n,s:n,s:n}", "worker_id",
				  top_str(o, "worker_id"), "online",
				  json_object_get(o, "online")
					  ? json_object_get(o, "online")
					  : json_null(),
				  "lifecycle", top_str(o, "lifecycle"),
				  "generation", "pool", "http"));
	}
	json_array_foreach(json_object_get(queues, "agent_types"), i, o) {
		json_t *t = json_pack(
			"{s:s,s:O,s:O,s:O,s:O,s:O,s:I}", "agent_type",
			top_str(o, "agent_type"), "length",
			json_object_get(o, "length"), "lag",
			json_object_get(o, "lag"), "pending",
			json_object_get(o, "pending"), "oldest_pending_age_ms",
			json_object_get(o, "oldest_pending_age_ms"),
			"entries_read", json_object_get(o, "entries_read"),
			"consumers",
			(json_int_t)json_array_size(
				json_object_get(o, "consumers")));
		if (t == NULL)
			continue;
		if (top_known(t, "lag") || top_known(t, "pending"))
			json_object_set_new(
				t, "backlog",
				json_integer(
					(json_int_t)(top_num(t, "lag") +
						     top_num(t, "pending"))));
		json_array_append_new(json_object_get(frame, "agent_types"), t);
	}
	for (int k = 0; k < tp->n_http; k++) {
		json_t *st = top_get_status(tp->http[k]);
		if (st)
			fold_status(frame, st, tp->http[k]);
		json_decref(st);
	}
	add_lanes(tp, frame);
	add_worker_info(tp, frame);
	add_rates(tp, frame);
out:
	json_decref(workers);
	json_decref(queues);
	return frame;
}
