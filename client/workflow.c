/* client/workflow.c - the pure parts of `bygate dag`, `fanout` and `group`
 * (docs/client.md "Workflows"): recognising a workflow's step events on a
 * session data stream, the progress line of a step, the result table and
 * summary of a finished workflow, and the documents the commands send.
 * Nothing here talks to Redis or prints: text goes into a bg_buf. Every
 * document read is untrusted; odd members show as "-" or "?", never fail. */
#include "client/client_internal.h"
#include "wire/ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define STATE_CONTENT_TYPE "3003" /* WIRE 3.5 think_title: emit_state */
#define COL_ID_MAX 32		  /* widest task / agent column */
#define ERROR_MAX 160		  /* bytes of an error shown in a table */
#define OUTPUT_MAX 60		  /* bytes of an output shown in a table */
#define NAME_MAX_BYTES 128

static const char *const kind_names[] = {
	[BG_WF_DAG] = "dag",
	[BG_WF_FANOUT] = "fanout",
	[BG_WF_GROUP] = "group",
};

static const char *const agent_types[] = {
	[BG_WF_DAG] = "bygate.dag",
	[BG_WF_FANOUT] = "bygate.fanout",
	[BG_WF_GROUP] = "bygate.group",
};

int bg_client_wf_kind(const char *name, enum bg_wf_kind *out)
{
	for (size_t i = 0; name && i < sizeof kind_names / sizeof *kind_names;
	     i++)
		if (!strcmp(name, kind_names[i])) {
			*out = (enum bg_wf_kind)i;
			return 0;
		}
	return -EINVAL;
}

const char *bg_client_wf_agent_type(enum bg_wf_kind k)
{
	return agent_types[k];
}

/* ---- step events ----------------------------------------------------- */

json_t *bg_client_wf_step(const char *raw, size_t len, const char *message_id,
			  const char *execution_id, int64_t *ts_ms)
{
	*ts_ms = 0;
	json_t *msg = raw ? json_loadb(raw, len, JSON_ALLOW_NUL, NULL) : NULL;
	const json_t *data = json_object_get(msg, "data");
	const json_t *delta = json_object_get(
		json_array_get(json_object_get(data, "choices"), 0), "delta");
	const char *text = json_string_value(json_object_get(delta, "content"));
	json_t *step = NULL;
	if (text &&
	    !strcmp(bg_client_jstr(msg, "event_type"), "reasoningLogDelta") &&
	    !strcmp(bg_client_jstr(data, "contentType"), STATE_CONTENT_TYPE))
		step = json_loads(text, 0, NULL);
	const char *run = bg_client_jstr(step, "run_id");
	bool ours =
		!strcmp(bg_client_jstr(msg, "message_id"), message_id) ||
		(execution_id && execution_id[0] && !strcmp(run, execution_id));
	if (!json_is_object(step) ||
	    !json_is_string(json_object_get(step, "bygate_workflow")) ||
	    !ours) {
		json_decref(step);
		step = NULL;
	} else {
		json_t *ts = json_object_get(msg, "timestamp");
		*ts_ms = json_is_integer(ts) ? json_integer_value(ts) : 0;
	}
	json_decref(msg);
	return step;
}

/* ---- text helpers ------------------------------------------------------ */

/* A member as text: a string as is, null or absent as "", anything else
 * as compact JSON (into *own, to free()). */
static const char *member_text(const json_t *o, const char *key, char **own)
{
	const json_t *v = json_object_get(o, key);
	*own = NULL;
	if (v == NULL || json_is_null(v))
		return "";
	if (json_is_string(v))
		return json_string_value(v);
	*own = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return *own ? *own : "?";
}

/* "HH:MM:SS.mmm" (UTC) of an epoch ms time. */
static void clock_text(int64_t ms, char *buf, size_t cap)
{
	struct tm tm;
	time_t s = (time_t)(ms / 1000);
	if (ms <= 0 || gmtime_r(&s, &tm) == NULL) {
		snprintf(buf, cap, "--:--:--.---");
		return;
	}
	size_t n = strftime(buf, cap, "%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03d", (int)(ms % 1000));
}

/* "1.234 s", or "-" when ms is negative (unknown). */
static void duration_text(double ms, char *buf, size_t cap)
{
	if (ms < 0)
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, "%.3f s", ms / 1000.0);
}

static bool has_int(const json_t *o, const char *key)
{
	return json_is_integer(json_object_get(o, key));
}

/* An integer member, or `dflt` when it is not an integer. */
static long long int_or(const json_t *o, const char *key, long long dflt)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* A step's or a row's name: the task id, "primer", "follower N", "#N", or
 * "(dag)" for a step of the whole run (START, END). */
static void label_text(const json_t *o, char *buf, size_t cap)
{
	const char *task = json_string_value(json_object_get(o, "task_id"));
	const char *role = json_string_value(json_object_get(o, "role"));
	if (task)
		snprintf(buf, cap, "%s", task);
	else if (role && !strcmp(role, "follower") && has_int(o, "index"))
		snprintf(buf, cap, "follower %lld", int_or(o, "index", 0));
	else if (role)
		snprintf(buf, cap, "%s", role);
	else if (has_int(o, "index"))
		snprintf(buf, cap, "#%lld", int_or(o, "index", 0));
	else if (json_is_string(json_object_get(o, "bygate_workflow")))
		snprintf(buf, cap, "(%s)",
			 json_string_value(
				 json_object_get(o, "bygate_workflow")));
	else
		snprintf(buf, cap, "?");
}

int bg_client_wf_step_line(struct bg_buf *out, const json_t *step,
			   int64_t ts_ms)
{
	char when[32], label[NAME_MAX_BYTES + 16], *err_own;
	clock_text(ts_ms, when, sizeof when);
	label_text(step, label, sizeof label);
	const char *status = bg_client_jstr(step, "status");
	const char *agent = bg_client_jstr(step, "agent");
	const char *err = member_text(step, "error", &err_own);
	long long retry = int_or(step, "retry_count", 0);
	int rc = bg_buf_printf(out, "%s  ", when);
	if (rc == 0)
		rc = bg_client_text_put(out, label, NAME_MAX_BYTES, 16);
	if (rc == 0)
		rc = bg_buf_puts(out, "  ");
	if (rc == 0)
		rc = bg_client_text_put(out, status[0] ? status : "?", 32, 9);
	if (rc == 0)
		rc = bg_buf_puts(out, "  ");
	if (rc == 0)
		rc = bg_client_text_put(out, agent[0] ? agent : "-",
					NAME_MAX_BYTES, 0);
	if (rc == 0 && retry > 0)
		rc = bg_buf_printf(out, "  (retry %lld)", retry);
	if (rc == 0 && err[0]) {
		rc = bg_buf_puts(out, "  ");
		if (rc == 0)
			rc = bg_client_text_put(out, err, ERROR_MAX, 0);
	}
	free(err_own);
	return rc;
}

/* ---- results ----------------------------------------------------------- */

bool bg_client_wf_status_ok(const char *status)
{
	return status &&
	       (!strcasecmp(status, "DONE") || !strcasecmp(status, "success") ||
		!strcasecmp(status, "COMPLETED"));
}

/* Every element of the array member `key` of o has an ok status. */
static bool all_ok(const json_t *o, const char *key)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(o, key), i, e)
		if (!bg_client_wf_status_ok(bg_client_jstr(e, "status")))
			return false;
	return true;
}

bool bg_client_wf_ok(enum bg_wf_kind k, const json_t *result)
{
	if (!json_is_object(result) || json_object_get(result, "error"))
		return false;
	switch (k) {
	case BG_WF_DAG:
		return has_int(result, "total") &&
		       int_or(result, "done", -1) ==
			       int_or(result, "total", -2) &&
		       int_or(result, "failed", 0) == 0 &&
		       int_or(result, "skipped", 0) == 0 &&
		       all_ok(result, "tasks");
	case BG_WF_FANOUT:
		return has_int(result, "total") &&
		       int_or(result, "success", -1) ==
			       int_or(result, "total", -2) &&
		       all_ok(result, "reports");
	case BG_WF_GROUP:
		return bg_client_wf_status_ok(bg_client_jstr(
			       json_object_get(result, "primer"), "status")) &&
		       all_ok(result, "followers");
	}
	return false;
}

/* The last cell of a row: member `first` of it, else its `fallback`
 * member (may be NULL), as text (max bytes); then the end of the row. */
static int last_cell(struct bg_buf *out, const json_t *row, const char *first,
		     const char *fallback, size_t max)
{
	char *own;
	const char *s = member_text(row, first, &own);
	if (!s[0] && fallback) {
		free(own);
		s = member_text(row, fallback, &own);
	}
	int rc = bg_client_text_put(out, s, max, 0);
	free(own);
	return rc ? rc : bg_client_text_end_row(out);
}

/* Widest value (shown width) of member `key` over the rows, at least
 * `min`, at most COL_ID_MAX + 3. */
static size_t column_width(const json_t *rows, const char *key, size_t min)
{
	size_t i, w = min;
	json_t *r;
	json_array_foreach(rows, i, r) {
		size_t n = bg_client_text_width(bg_client_jstr(r, key),
						COL_ID_MAX);
		w = n > w ? n : w;
	}
	return w;
}

static int dag_table(struct bg_buf *out, const json_t *result)
{
	const json_t *tasks = json_object_get(result, "tasks");
	size_t wt = column_width(tasks, "task_id", 4);
	size_t wa = column_width(tasks, "agent", 5);
	size_t i;
	json_t *t;
	int rc = bg_client_text_cell(out, "TASK", COL_ID_MAX, wt);
	rc = rc ? rc : bg_client_text_cell(out, "STATUS", 16, 9);
	rc = rc ? rc : bg_client_text_cell(out, "AGENT", COL_ID_MAX, wa);
	rc = rc ? rc
		: bg_buf_printf(out, "%7s  %10s  ERROR\n", "RETRIES",
				"DURATION");
	json_array_foreach(tasks, i, t) {
		char dur[32];
		bool timed = has_int(t, "started_at") &&
			     has_int(t, "finished_at") &&
			     int_or(t, "started_at", 0) > 0;
		duration_text(timed ? (double)(int_or(t, "finished_at", 0) -
					       int_or(t, "started_at", 0))
				    : -1,
			      dur, sizeof dur);
		rc = rc ? rc
			: bg_client_text_cell(out, bg_client_jstr(t, "task_id"),
					      COL_ID_MAX, wt);
		rc = rc ? rc
			: bg_client_text_cell(out, bg_client_jstr(t, "status"),
					      16, 9);
		rc = rc ? rc
			: bg_client_text_cell(out, bg_client_jstr(t, "agent"),
					      COL_ID_MAX, wa);
		rc = rc ? rc
			: bg_buf_printf(out, "%7lld  %10s  ",
					int_or(t, "retry_count", 0), dur);
		rc = rc ? rc : last_cell(out, t, "error", NULL, ERROR_MAX);
	}
	char dur[32];
	duration_text((double)int_or(result, "duration_ms", -1), dur,
		      sizeof dur);
	return rc ? rc
		  : bg_buf_printf(out,
				  "dag %s: %lld task(s): %lld done, %lld "
				  "failed, %lld skipped in %s\n",
				  bg_client_jstr(result, "run_id"),
				  int_or(result, "total", 0),
				  int_or(result, "done", 0),
				  int_or(result, "failed", 0),
				  int_or(result, "skipped", 0), dur);
}

static int by_index(const void *pa, const void *pb)
{
	long long a = int_or(*(json_t *const *)pa, "index", 0);
	long long b = int_or(*(json_t *const *)pb, "index", 0);
	return a < b ? -1 : a > b;
}

/* The rows of array member `key`, sorted by index (borrowed references
 * in a malloc()ed vector; *n their number). NULL with *n 0 when empty. */
static json_t **sorted_rows(const json_t *result, const char *key, size_t *n)
{
	const json_t *a = json_object_get(result, key);
	*n = json_array_size(a);
	json_t **v = *n ? malloc(*n * sizeof *v) : NULL;
	if (v == NULL) {
		*n = 0;
		return NULL;
	}
	for (size_t i = 0; i < *n; i++)
		v[i] = json_array_get(a, i);
	qsort(v, *n, sizeof *v, by_index);
	return v;
}

static int fanout_table(struct bg_buf *out, const json_t *result)
{
	size_t n;
	json_t **rows = sorted_rows(result, "reports", &n);
	int rc = bg_buf_printf(out, "%5s  %-9s  %10s  SUMMARY / ERROR\n",
			       "INDEX", "STATUS", "DURATION");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const json_t *r = rows[i];
		const json_t *secs = json_object_get(r, "duration_seconds");
		char dur[32];
		duration_text(json_is_number(secs)
				      ? json_number_value(secs) * 1000.0
				      : -1,
			      dur, sizeof dur);
		rc = bg_buf_printf(out, "%5lld  ", int_or(r, "index", 0));
		rc = rc ? rc
			: bg_client_text_cell(out, bg_client_jstr(r, "status"),
					      16, 9);
		rc = rc ? rc : bg_buf_printf(out, "%10s  ", dur);
		bool ok = bg_client_wf_status_ok(bg_client_jstr(r, "status"));
		rc = rc ? rc
			: last_cell(out, r, ok ? "summary" : "error",
				    ok ? NULL : "summary", ERROR_MAX);
	}
	free(rows);
	char dur[32];
	duration_text((double)int_or(result, "duration_ms", -1), dur,
		      sizeof dur);
	return rc ? rc
		  : bg_buf_printf(out,
				  "fanout %s: %lld sub-task(s): %lld success, "
				  "%lld failed, %lld timeout, %lld stopped "
				  "in %s\n",
				  bg_client_jstr(result, "run_id"),
				  int_or(result, "total", 0),
				  int_or(result, "success", 0),
				  int_or(result, "failed", 0),
				  int_or(result, "timeout", 0),
				  int_or(result, "stopped", 0), dur);
}

static int group_row(struct bg_buf *out, const char *role, const json_t *r)
{
	int rc = bg_client_text_cell(out, role, COL_ID_MAX, 12);
	rc = rc ? rc
		: bg_client_text_cell(out, bg_client_jstr(r, "status"), 16, 9);
	return rc ? rc : last_cell(out, r, "error", "output", OUTPUT_MAX);
}

static int group_table(struct bg_buf *out, const json_t *result)
{
	size_t n, ok = 0;
	json_t **rows = sorted_rows(result, "followers", &n);
	const json_t *primer = json_object_get(result, "primer");
	int rc = bg_buf_printf(out, "%-12s  %-9s  ERROR / OUTPUT\n", "ROLE",
			       "STATUS");
	rc = rc ? rc : group_row(out, "primer", primer);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char role[48];
		snprintf(role, sizeof role, "follower %lld",
			 int_or(rows[i], "index", (long long)i));
		ok += bg_client_wf_status_ok(bg_client_jstr(rows[i], "status"));
		rc = group_row(out, role, rows[i]);
	}
	free(rows);
	const char *pst = bg_client_jstr(primer, "status");
	return rc ? rc
		  : bg_buf_printf(out,
				  "group %s: primer %s, %zu follower(s): %zu "
				  "done, %zu not\n",
				  bg_client_jstr(result, "run_id"),
				  pst[0] ? pst : "-", n, ok, n - ok);
}

int bg_client_wf_table(struct bg_buf *out, enum bg_wf_kind k,
		       const json_t *result)
{
	switch (k) {
	case BG_WF_DAG:
		return dag_table(out, result);
	case BG_WF_FANOUT:
		return fanout_table(out, result);
	case BG_WF_GROUP:
		return group_table(out, result);
	}
	return -EINVAL;
}

/* ---- what the commands send -------------------------------------------- */

/* A follower: an object with an "agent" string of 1..128 bytes. */
static int add_follower(json_t *into, json_t *f, const char **why)
{
	const char *agent = json_string_value(json_object_get(f, "agent"));
	if (!json_is_object(f) || agent == NULL || !agent[0] ||
	    strlen(agent) > NAME_MAX_BYTES) {
		*why = "a follower must be an object with an \"agent\" string "
		       "of 1-128 bytes";
		return -EINVAL;
	}
	return json_array_append(into, f) ? -ENOMEM : 0;
}

int bg_client_wf_followers(const char *text, json_t *into, const char **why)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	json_t *list = json_object_get(v, "followers");
	int rc = 0;
	*why = NULL;
	if (v == NULL) {
		*why = "not JSON";
		rc = -EINVAL;
	} else if (json_is_array(v) || json_is_array(list)) {
		json_t *a = json_is_array(v) ? v : list, *f;
		size_t i;
		json_array_foreach(a, i, f) {
			if ((rc = add_follower(into, f, why)) != 0)
				break;
		}
		if (rc == 0 && json_array_size(a) == 0) {
			*why = "no follower given";
			rc = -EINVAL;
		}
	} else {
		rc = add_follower(into, v, why);
	}
	json_decref(v);
	return rc;
}

json_t *bg_client_wf_group_add(json_t *followers)
{
	char id[33];
	bg_uuid_hex(id, false); /* the group applies each add once */
	return json_pack("{s:s,s:s,s:O}", "bygate_group", "add", "add_id", id,
			 "followers", followers);
}

json_t *bg_client_wf_group_close(void)
{
	return json_pack("{s:s}", "bygate_group", "close");
}

json_t *bg_client_wf_fanout_spec(const char *agent, json_t *inputs,
				 long long count, double timeout_s)
{
	json_t *t = timeout_s == (double)(long long)timeout_s
			    ? json_integer((long long)timeout_s)
			    : json_real(timeout_s);
	json_t *n = inputs ? json_incref(inputs) : json_integer(count);
	return json_pack("{s:s,s:o,s:o}", "agent", agent,
			 inputs ? "inputs" : "count", n, "timeout_s", t);
}
