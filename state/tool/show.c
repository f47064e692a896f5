/* state/tool/show.c - bygate-state dump and get: every record of the
 * chosen databases, or those of one entry or session, decoded and shown as
 * text (one section per database) or JSON. A record that does not decode
 * is reported and skipped; the others are still shown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/state.h"
#include "state/tool/tool.h"

static void ptime(struct bg_buf *out, int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char when[32];
	if (ms <= 0 || gmtime_r(&sec, &tm) == NULL ||
	    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		bg_buf_printf(out, "%lld", (long long)ms);
		return;
	}
	bg_buf_printf(out, "%s.%03dZ", when, (int)(ms % 1000));
}

/* " name=value" with value rendered. */
static void pfield(struct bg_buf *out, const char *name, struct bg_str v)
{
	bg_buf_printf(out, " %s=", name);
	bg_tool_render(out, v);
}

static void pfield_time(struct bg_buf *out, const char *name, int64_t ms)
{
	bg_buf_printf(out, " %s=", name);
	ptime(out, ms);
}

/* ---- output: one section per database, as text or JSON ---- */

struct section {
	enum bg_state_db db;
	size_t n;
	struct bg_buf text;
	json_t *rows;
};

struct out {
	bool json;
	struct section sec[BG_DB__COUNT];
	size_t corrupt[BG_DB__COUNT]; /* walks that reported BG_STATE_ECORRUPT */
};

static void out_init(struct out *o, bool json)
{
	memset(o, 0, sizeof *o);
	o->json = json;
	for (int db = 0; db < BG_DB__COUNT; db++) {
		o->sec[db].db = (enum bg_state_db)db;
		o->sec[db].rows = json_array();
	}
}

static void out_free(struct out *o)
{
	for (int db = 0; db < BG_DB__COUNT; db++) {
		bg_buf_free(&o->sec[db].text);
		json_decref(o->sec[db].rows);
	}
}

/* A row: JSON object appended (stolen) or text line prefix "  ". */
static struct bg_buf *row_text(struct out *o, enum bg_state_db db)
{
	o->sec[db].n++;
	bg_buf_puts(&o->sec[db].text, "  ");
	return &o->sec[db].text;
}

static void row_json(struct out *o, enum bg_state_db db, json_t *row)
{
	o->sec[db].n++;
	json_array_append_new(o->sec[db].rows, row);
}

static void out_print(struct out *o, const bool *shown)
{
	if (o->json) {
		json_t *root = json_object();
		for (int db = 0; db < BG_DB__COUNT; db++)
			if (shown[db])
				json_object_set(root, bg_state_db_name(db),
						o->sec[db].rows);
		json_t *bad = json_object();
		for (int db = 0; db < BG_DB__COUNT; db++)
			if (o->corrupt[db])
				json_object_set_new(
					bad, bg_state_db_name(db),
					json_integer(
						(json_int_t)o->corrupt[db]));
		json_object_set_new(root, "corrupt", bad);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(root);
		return;
	}
	for (int db = 0; db < BG_DB__COUNT; db++) {
		if (!shown[db])
			continue;
		printf("== %s (%zu)\n", bg_state_db_name(db), o->sec[db].n);
		fwrite(o->sec[db].text.p ? o->sec[db].text.p : "", 1,
		       o->sec[db].text.len, stdout);
	}
}

/* dump shows everything; get --entry one (stream, id); get --session the
 * records of a session and the journal entries of its executions. */
struct filter {
	bool on;
	struct bg_str stream, id, session;
	struct bg_tool_items keys; /* --session: (stream, id) of its records */
};

static bool want_entry(const struct filter *f, struct bg_str stream,
		       struct bg_str id)
{
	if (!f->on)
		return true;
	if (f->session.p)
		return bg_tool_items_find(&f->keys, stream, id) != NULL;
	return stream.len == f->stream.len && id.len == f->id.len &&
	       memcmp(stream.p, f->stream.p, stream.len) == 0 &&
	       memcmp(id.p, f->id.p, id.len) == 0;
}

static bool want_session(const struct filter *f, struct bg_str session)
{
	return !f->on || (f->session.p && session.len == f->session.len &&
			  memcmp(session.p, f->session.p, session.len) == 0);
}

/* ---- walks: one visitor per database ---- */

struct dump {
	struct out *o;
	struct filter *f;
};

/* meta "suspects": one readable item per suspect. */
struct suspects_view {
	json_t *arr;	    /* JSON */
	struct bg_buf *txt; /* text */
};

static int show_suspect(void *arg, const struct bg_state_suspect *s)
{
	struct suspects_view *v = arg;
	if (v->arr) {
		json_array_append_new(
			v->arr,
			json_pack("{s:o s:o s:i s:b}", "stream",
				  bg_tool_jtext(s->stream), "entry_id",
				  bg_tool_jtext(s->entry_id), "alone_crashes",
				  (int)s->alone_crashes, "running",
				  s->running));
		return 0;
	}
	bg_buf_puts(v->txt, " ");
	bg_tool_render(v->txt, s->stream);
	bg_buf_puts(v->txt, "/");
	bg_tool_render(v->txt, s->entry_id);
	bg_buf_printf(v->txt, " (alone_crashes %u%s)", s->alone_crashes,
		      s->running ? ", running" : "");
	return 0;
}

static bool show_suspects(struct dump *d, struct bg_str key, struct bg_str val)
{
	if (!bg_str_eq(key, "suspects"))
		return false;
	if (d->o->json) {
		struct suspects_view v = { json_array(), NULL };
		if (bg_state_suspects_parse(val, show_suspect, &v) != 0) {
			json_decref(v.arr);
			return false;
		}
		json_t *row = json_object();
		json_object_set_new(row, "key", bg_tool_jtext(key));
		json_object_set_new(row, "value", v.arr);
		row_json(d->o, BG_DB_META, row);
		return true;
	}
	struct bg_buf items = { 0 };
	struct suspects_view v = { NULL, &items };
	if (bg_state_suspects_parse(val, show_suspect, &v) != 0) {
		bg_buf_free(&items);
		return false;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_META);
	bg_buf_puts(t, "suspects =");
	if (items.len)
		bg_buf_append(t, items.p, items.len);
	bg_buf_puts(t, "\n");
	bg_buf_free(&items);
	return true;
}

static int show_meta(void *arg, struct bg_str key, struct bg_str val)
{
	struct dump *d = arg;
	if (show_suspects(d, key, val))
		return 0;
	const unsigned char *u = (const unsigned char *)val.p;
	bool number = bg_str_eq(key, "schema") && val.len == 4;
	long long num = number ? (long long)u[0] << 24 | u[1] << 16 |
					 u[2] << 8 | u[3]
			       : 0;
	if (d->o->json) {
		json_t *row = json_object();
		json_object_set_new(row, "key", bg_tool_jtext(key));
		json_object_set_new(row, "value",
				    number ? json_integer(num)
					   : bg_tool_jtext(val));
		row_json(d->o, BG_DB_META, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_META);
	bg_tool_render(t, key);
	bg_buf_puts(t, " = ");
	if (number)
		bg_buf_printf(t, "%lld", num);
	else
		bg_tool_render(t, val);
	bg_buf_puts(t, "\n");
	return 0;
}

struct cmd_sink {
	json_t *cmds;	    /* JSON: array of argv arrays */
	struct bg_buf *txt; /* text: one indented line per command */
};

static int show_cmd(void *arg, int argc, const struct bg_str *argv)
{
	struct cmd_sink *k = arg;
	json_t *a = k->cmds ? json_array() : NULL;
	if (k->txt)
		bg_buf_puts(k->txt, "      ");
	for (int i = 0; i < argc; i++) {
		if (a)
			json_array_append_new(a, bg_tool_jtext(argv[i]));
		if (k->txt) {
			if (i)
				bg_buf_puts(k->txt, " ");
			bg_tool_render(k->txt, argv[i]);
		}
	}
	if (a)
		json_array_append_new(k->cmds, a);
	if (k->txt)
		bg_buf_puts(k->txt, "\n");
	return 0;
}

static int count_cmd(void *arg, int argc, const struct bg_str *argv)
{
	++*(size_t *)arg;
	return 0;
}

static int show_journal(void *arg, struct bg_str stream, struct bg_str id,
			struct bg_str finish)
{
	struct dump *d = arg;
	if (!want_entry(d->f, stream, id))
		return 0;
	size_t ncmd = 0;
	bool ok = bg_state_finish_each(finish, count_cmd, &ncmd) == 0;
	if (d->o->json) {
		json_t *row = json_object();
		struct cmd_sink k = { json_array(), NULL };
		json_object_set_new(row, "stream", bg_tool_jtext(stream));
		json_object_set_new(row, "entry_id", bg_tool_jtext(id));
		json_object_set_new(row, "bytes",
				    json_integer((json_int_t)finish.len));
		if (ok)
			bg_state_finish_each(finish, show_cmd, &k);
		json_object_set_new(row, "commands", k.cmds);
		if (!ok)
			json_object_set_new(row, "error",
					    json_string("undecodable finish"));
		row_json(d->o, BG_DB_JOURNAL, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_JOURNAL);
	bg_tool_render(t, stream);
	bg_buf_puts(t, " ");
	bg_tool_render(t, id);
	if (!ok) {
		bg_buf_printf(t, "  undecodable finish (%zu bytes)\n",
			      finish.len);
		return 0;
	}
	bg_buf_printf(t, "  %zu commands, %zu bytes\n", ncmd, finish.len);
	struct cmd_sink k = { NULL, t };
	return bg_state_finish_each(finish, show_cmd, &k);
}

static int show_exec(void *arg, struct bg_str stream, struct bg_str id,
		     const struct bg_state_exec *e)
{
	struct dump *d = arg;
	if (!want_entry(d->f, stream, id) && !want_session(d->f, e->session_id))
		return 0;
	if (d->o->json) {
		json_t *row = json_pack(
			"{s:o s:o s:o s:o s:o s:o s:i s:i s:I s:I s:I s:I}",
			"stream", bg_tool_jtext(stream), "entry_id",
			bg_tool_jtext(id), "execution_id",
			bg_tool_jtext(e->execution_id), "message_id",
			bg_tool_jtext(e->message_id), "session_id",
			bg_tool_jtext(e->session_id), "agent_type",
			bg_tool_jtext(e->agent_type), "slot", (int)e->slot,
			"pid", (int)e->pid, "attempt", (json_int_t)e->attempt,
			"interrupted", (json_int_t)e->interrupted, "started_ms",
			(json_int_t)e->started_ms, "first_seen_ms",
			(json_int_t)e->first_seen_ms);
		row_json(d->o, BG_DB_INFLIGHT, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_INFLIGHT);
	bg_tool_render(t, stream);
	bg_buf_puts(t, " ");
	bg_tool_render(t, id);
	pfield(t, "execution", e->execution_id);
	pfield(t, "message", e->message_id);
	pfield(t, "session", e->session_id);
	pfield(t, "agent_type", e->agent_type);
	bg_buf_printf(t, " slot=%d pid=%d attempt=%u interrupted=%u",
		      (int)e->slot, (int)e->pid, e->attempt, e->interrupted);
	pfield_time(t, "started", e->started_ms);
	pfield_time(t, "first_seen", e->first_seen_ms);
	bg_buf_puts(t, "\n");
	return 0;
}

static int show_hist(void *arg, const struct bg_state_hist *h)
{
	struct dump *d = arg;
	if (!want_entry(d->f, h->stream, h->entry_id) &&
	    !want_session(d->f, h->session_id))
		return 0;
	if (d->o->json) {
		json_t *row = json_pack(
			"{s:o s:o s:o s:o s:o s:o s:o s:I s:I s:I}", "stream",
			bg_tool_jtext(h->stream), "entry_id",
			bg_tool_jtext(h->entry_id), "execution_id",
			bg_tool_jtext(h->execution_id), "message_id",
			bg_tool_jtext(h->message_id), "session_id",
			bg_tool_jtext(h->session_id), "agent_type",
			bg_tool_jtext(h->agent_type), "status",
			bg_tool_jtext(h->status), "finished_ms",
			(json_int_t)h->finished_ms, "duration_ms",
			(json_int_t)h->duration_ms, "attempt",
			(json_int_t)h->attempt);
		row_json(d->o, BG_DB_HISTORY, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_HISTORY);
	ptime(t, h->finished_ms);
	bg_buf_puts(t, " ");
	bg_tool_render(t, h->status);
	bg_buf_puts(t, " ");
	bg_tool_render(t, h->stream);
	bg_buf_puts(t, " ");
	bg_tool_render(t, h->entry_id);
	pfield(t, "execution", h->execution_id);
	pfield(t, "message", h->message_id);
	pfield(t, "session", h->session_id);
	pfield(t, "agent_type", h->agent_type);
	bg_buf_printf(t, " attempt=%u duration=%lldms\n", h->attempt,
		      (long long)h->duration_ms);
	return 0;
}

static int show_session(void *arg, const struct bg_state_session *s)
{
	struct dump *d = arg;
	if (d->f->on && !want_session(d->f, s->session_id))
		return 0;
	if (d->o->json) {
		json_t *row =
			json_pack("{s:o s:o s:o s:o s:I s:I s:I}", "agent_type",
				  bg_tool_jtext(s->agent_type), "user_code",
				  bg_tool_jtext(s->user_code), "session_id",
				  bg_tool_jtext(s->session_id), "path",
				  bg_tool_jtext(s->path), "created_ms",
				  (json_int_t)s->created_ms, "last_used_ms",
				  (json_int_t)s->last_used_ms, "bytes",
				  (json_int_t)s->bytes);
		row_json(d->o, BG_DB_SESSIONS, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_SESSIONS);
	bg_tool_render(t, s->agent_type);
	bg_buf_puts(t, " ");
	bg_tool_render(t, s->user_code.len ? s->user_code : BG_STR_LIT("-"));
	bg_buf_puts(t, " ");
	bg_tool_render(t, s->session_id);
	pfield(t, "path", s->path);
	pfield_time(t, "created", s->created_ms);
	pfield_time(t, "last_used", s->last_used_ms);
	if (s->bytes < 0)
		bg_buf_puts(t, " bytes=unknown\n");
	else
		bg_buf_printf(t, " bytes=%lld\n", (long long)s->bytes);
	return 0;
}

/* Walk db with the visitor of the dump; a corrupt record is counted and
 * reported, anything else fails the command. */
static int walk_db(struct bg_state *st, enum bg_state_db db, struct dump *d)
{
	int rc = 0;
	switch (db) {
	case BG_DB_META:
		rc = bg_state_meta_each(st, show_meta, d);
		break;
	case BG_DB_JOURNAL:
		rc = bg_state_journal_each(st, show_journal, d);
		break;
	case BG_DB_INFLIGHT:
		rc = bg_state_exec_each(st, show_exec, d);
		break;
	case BG_DB_HISTORY:
		rc = bg_state_hist_each(st, show_hist, d);
		break;
	default:
		rc = bg_state_session_each(st, show_session, d);
		break;
	}
	if (rc == BG_STATE_ECORRUPT) {
		d->o->corrupt[db]++;
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
		return 0;
	}
	if (rc)
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
	return rc;
}

static bool any_corrupt(const struct out *o)
{
	for (int db = 0; db < BG_DB__COUNT; db++)
		if (o->corrupt[db])
			return true;
	return false;
}

static int db_by_name(const char *name)
{
	for (int db = 0; db < BG_DB__COUNT; db++)
		if (strcmp(name, bg_state_db_name(db)) == 0)
			return db;
	return -1;
}

int bg_tool_dump(struct bg_state *st, const struct bg_tool_args *a)
{
	int only = a->db ? db_by_name(a->db) : -1;
	if (a->db && only < 0) {
		fprintf(stderr, "bygate-state: unknown database \"%s\"\n",
			a->db);
		return BG_TOOL_EXIT_USAGE;
	}
	struct out o;
	struct filter f = { 0 };
	struct dump d = { &o, &f };
	bool shown[BG_DB__COUNT] = { false };
	int rc = 0;
	out_init(&o, a->json);
	for (int db = 0; rc == 0 && db < BG_DB__COUNT; db++) {
		shown[db] = only < 0 || only == db;
		if (shown[db])
			rc = walk_db(st, (enum bg_state_db)db, &d);
	}
	if (rc == 0)
		out_print(&o, shown);
	int code = rc		     ? BG_TOOL_EXIT_OPEN
		   : any_corrupt(&o) ? BG_TOOL_EXIT_FOUND
				     : BG_TOOL_EXIT_OK;
	out_free(&o);
	return code;
}

/* ---- get ---- */

static int collect_exec_keys(void *arg, struct bg_str stream, struct bg_str id,
			     const struct bg_state_exec *e)
{
	struct filter *f = arg;
	return want_session(f, e->session_id)
		       ? bg_tool_items_add(&f->keys, stream, id, 'i')
		       : 0;
}

static int collect_hist_keys(void *arg, const struct bg_state_hist *h)
{
	struct filter *f = arg;
	return want_session(f, h->session_id)
		       ? bg_tool_items_add(&f->keys, h->stream, h->entry_id,
					   'h')
		       : 0;
}

static int parse_entry(const char *arg, struct filter *f)
{
	const char *slash = strrchr(arg, '/');
	if (slash == NULL || slash == arg || slash[1] == '\0')
		return -1;
	f->stream = (struct bg_str){ arg, (size_t)(slash - arg) };
	f->id = bg_str_c(slash + 1);
	return 0;
}

int bg_tool_get(struct bg_state *st, const struct bg_tool_args *a)
{
	struct filter f = { .on = true };
	if (!a->entry == !a->session ||
	    (a->entry && parse_entry(a->entry, &f))) {
		fprintf(stderr, "bygate-state: get needs --entry STREAM/ID or "
				"--session SESSION\n");
		return BG_TOOL_EXIT_USAGE;
	}
	int rc = 0;
	if (a->session) {
		f.session = bg_str_c(a->session);
		rc = bg_state_exec_each(st, collect_exec_keys, &f);
		if (rc == 0 || rc == BG_STATE_ECORRUPT)
			rc = bg_state_hist_each(st, collect_hist_keys, &f);
		if (rc == BG_STATE_ECORRUPT)
			rc = 0; /* walk_db reports it below */
		else if (rc)
			fprintf(stderr, "bygate-state: %s\n",
				bg_state_errmsg(st));
	}
	struct out o;
	struct dump d = { &o, &f };
	bool shown[BG_DB__COUNT] = { false, true, true, true,
				     a->session != NULL };
	out_init(&o, a->json);
	for (int db = BG_DB_JOURNAL; rc == 0 && db < BG_DB__COUNT; db++)
		if (shown[db])
			rc = walk_db(st, (enum bg_state_db)db, &d);
	size_t found = 0;
	for (int db = 0; db < BG_DB__COUNT; db++)
		found += o.sec[db].n;
	if (rc == 0)
		out_print(&o, shown);
	out_free(&o);
	bg_tool_items_free(&f.keys);
	return rc      ? BG_TOOL_EXIT_OPEN
	       : found ? BG_TOOL_EXIT_OK
		       : BG_TOOL_EXIT_FOUND;
}
