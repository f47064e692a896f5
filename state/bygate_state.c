/* state/bygate_state.c - bygate-state: read-only inspection of bygated's
 * LMDB state (dump, get, stats) and its cross-check against Redis (check).
 * It opens the environment with MDB_RDONLY and never writes it, so it is
 * safe while bygated runs. Usage and exit codes: docs/man/bygate-state.1. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "conf/config.h"
#include "state/state.h"
#include "wire/keys.h"

enum { EXIT_OK = 0, EXIT_FOUND = 1, EXIT_USAGE = 2, EXIT_OPEN = 3 };

#define SHOW_MAX 200 /* bytes of a value shown before "...(N bytes)" */
#define PEL_PAGE 1000 /* XPENDING count per stream */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static const char usage_text[] =
	"usage: bygate-state [-d STATE_DIR | -c CONFIG] COMMAND [--json]\n"
	"commands:\n"
	"  dump [--db meta|journal|inflight|history|sessions]\n"
	"  get --entry STREAM/ID | --session SESSION\n"
	"  stats\n"
	"  check [--redis HOST:PORT] [--group GROUP] [--worker WORKER]\n"
	"Without -d, the state directory is paths.state_dir of CONFIG\n"
	"(default $BYGATE_CONFIG or " BG_CONFIG_DEFAULT_PATH ").\n"
	"Exit: 0 ok, 1 discrepancies/corrupt records/nothing found, 2 usage,\n"
	"3 cannot open the state or reach Redis.\n";

struct args {
	const char *state_dir, *config, *command;
	const char *db, *entry, *session, *redis, *group, *worker;
	bool json;
};

/* ---- displaying untrusted bytes ---- */

static size_t utf8_char_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2
				  : (p[0] & 0xf0) == 0xe0   ? 3
				  : (p[0] & 0xf8) == 0xf0   ? 4
							    : 0;
	if (len == 0 || len > n || (len == 2 && p[0] < 0xc2))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Append s for display: valid UTF-8 as is, control bytes, backslashes and
 * bytes of invalid sequences escaped (\xNN, \\); past SHOW_MAX bytes cut
 * (on a character boundary) and followed by "...(N bytes)". The result is
 * always valid UTF-8, so it may go into JSON. */
static void render(struct bg_buf *out, struct bg_str s)
{
	const unsigned char *p = (const unsigned char *)s.p;
	size_t n = s.len > SHOW_MAX ? SHOW_MAX : s.len;
	while (n < s.len && n > 0 && (p[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_char_len(p + i, n - i);
		if (len == 1 && p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\')
			bg_buf_append(out, p + i, 1);
		else if (len > 1)
			bg_buf_append(out, p + i, len);
		else if (p[i] == '\\')
			bg_buf_puts(out, "\\\\");
		else
			bg_buf_printf(out, "\\x%02x", p[i]);
		i += len ? len : 1;
	}
	if (n < s.len)
		bg_buf_printf(out, "...(%zu bytes)", s.len);
}

static json_t *jtext(struct bg_str s)
{
	struct bg_buf b = { 0 };
	render(&b, s);
	json_t *j = json_stringn(b.p ? b.p : "", b.len);
	bg_buf_free(&b);
	return j;
}

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
	render(out, v);
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
					json_integer((json_int_t)o->corrupt[db]));
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

/* ---- which records to show ---- */

/* An owned (stream, entry id) pair. */
struct item {
	char *stream, *id;
	size_t slen, ilen;
	char kind; /* 'j' journal, 'i' inflight */
};

struct items {
	struct item *v;
	size_t n, cap;
};

static char *memdup0(struct bg_str s)
{
	char *p = malloc(s.len + 1);
	if (p) {
		memcpy(p, s.p, s.len);
		p[s.len] = '\0';
	}
	return p;
}

static int items_add(struct items *l, struct bg_str stream, struct bg_str id,
		     char kind)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct item *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct item it = { memdup0(stream), memdup0(id), stream.len, id.len,
			   kind };
	if (it.stream == NULL || it.id == NULL) {
		free(it.stream);
		free(it.id);
		return -ENOMEM;
	}
	l->v[l->n++] = it;
	return 0;
}

static bool item_is(const struct item *it, struct bg_str stream,
		    struct bg_str id)
{
	return it->slen == stream.len && it->ilen == id.len &&
	       memcmp(it->stream, stream.p, stream.len) == 0 &&
	       memcmp(it->id, id.p, id.len) == 0;
}

static const struct item *items_find(const struct items *l,
				     struct bg_str stream, struct bg_str id)
{
	for (size_t i = 0; i < l->n; i++)
		if (item_is(&l->v[i], stream, id))
			return &l->v[i];
	return NULL;
}

static void items_free(struct items *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].stream);
		free(l->v[i].id);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* dump shows everything; get --entry one (stream, id); get --session the
 * records of a session and the journal entries of its executions. */
struct filter {
	bool on;
	struct bg_str stream, id, session;
	struct items keys; /* --session: (stream, id) of its records */
};

static bool want_entry(const struct filter *f, struct bg_str stream,
		       struct bg_str id)
{
	if (!f->on)
		return true;
	if (f->session.p)
		return items_find(&f->keys, stream, id) != NULL;
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
			v->arr, json_pack("{s:o s:o s:i s:b}", "stream",
					  jtext(s->stream), "entry_id",
					  jtext(s->entry_id), "alone_crashes",
					  (int)s->alone_crashes, "running",
					  s->running));
		return 0;
	}
	bg_buf_puts(v->txt, " ");
	render(v->txt, s->stream);
	bg_buf_puts(v->txt, "/");
	render(v->txt, s->entry_id);
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
		json_object_set_new(row, "key", jtext(key));
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
		json_object_set_new(row, "key", jtext(key));
		json_object_set_new(row, "value",
				    number ? json_integer(num) : jtext(val));
		row_json(d->o, BG_DB_META, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_META);
	render(t, key);
	bg_buf_puts(t, " = ");
	if (number)
		bg_buf_printf(t, "%lld", num);
	else
		render(t, val);
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
			json_array_append_new(a, jtext(argv[i]));
		if (k->txt) {
			if (i)
				bg_buf_puts(k->txt, " ");
			render(k->txt, argv[i]);
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
		json_object_set_new(row, "stream", jtext(stream));
		json_object_set_new(row, "entry_id", jtext(id));
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
	render(t, stream);
	bg_buf_puts(t, " ");
	render(t, id);
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
			"stream", jtext(stream), "entry_id", jtext(id),
			"execution_id", jtext(e->execution_id), "message_id",
			jtext(e->message_id), "session_id",
			jtext(e->session_id), "agent_type",
			jtext(e->agent_type), "slot", (int)e->slot, "pid",
			(int)e->pid, "attempt", (json_int_t)e->attempt,
			"interrupted", (json_int_t)e->interrupted,
			"started_ms", (json_int_t)e->started_ms,
			"first_seen_ms", (json_int_t)e->first_seen_ms);
		row_json(d->o, BG_DB_INFLIGHT, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_INFLIGHT);
	render(t, stream);
	bg_buf_puts(t, " ");
	render(t, id);
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
			jtext(h->stream), "entry_id", jtext(h->entry_id),
			"execution_id", jtext(h->execution_id), "message_id",
			jtext(h->message_id), "session_id",
			jtext(h->session_id), "agent_type",
			jtext(h->agent_type), "status", jtext(h->status),
			"finished_ms", (json_int_t)h->finished_ms,
			"duration_ms", (json_int_t)h->duration_ms, "attempt",
			(json_int_t)h->attempt);
		row_json(d->o, BG_DB_HISTORY, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_HISTORY);
	ptime(t, h->finished_ms);
	bg_buf_puts(t, " ");
	render(t, h->status);
	bg_buf_puts(t, " ");
	render(t, h->stream);
	bg_buf_puts(t, " ");
	render(t, h->entry_id);
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
		json_t *row = json_pack(
			"{s:o s:o s:o s:o s:I s:I s:I}", "agent_type",
			jtext(s->agent_type), "user_code", jtext(s->user_code),
			"session_id", jtext(s->session_id), "path",
			jtext(s->path), "created_ms", (json_int_t)s->created_ms,
			"last_used_ms", (json_int_t)s->last_used_ms, "bytes",
			(json_int_t)s->bytes);
		row_json(d->o, BG_DB_SESSIONS, row);
		return 0;
	}
	struct bg_buf *t = row_text(d->o, BG_DB_SESSIONS);
	render(t, s->agent_type);
	bg_buf_puts(t, " ");
	render(t, s->user_code.len ? s->user_code : BG_STR_LIT("-"));
	bg_buf_puts(t, " ");
	render(t, s->session_id);
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

static int cmd_dump(struct bg_state *st, const struct args *a)
{
	int only = a->db ? db_by_name(a->db) : -1;
	if (a->db && only < 0) {
		fprintf(stderr, "bygate-state: unknown database \"%s\"\n",
			a->db);
		return EXIT_USAGE;
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
	int code = rc ? EXIT_OPEN : any_corrupt(&o) ? EXIT_FOUND : EXIT_OK;
	out_free(&o);
	return code;
}

/* ---- get ---- */

static int collect_exec_keys(void *arg, struct bg_str stream, struct bg_str id,
			     const struct bg_state_exec *e)
{
	struct filter *f = arg;
	return want_session(f, e->session_id)
		       ? items_add(&f->keys, stream, id, 'i')
		       : 0;
}

static int collect_hist_keys(void *arg, const struct bg_state_hist *h)
{
	struct filter *f = arg;
	return want_session(f, h->session_id)
		       ? items_add(&f->keys, h->stream, h->entry_id, 'h')
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

static int cmd_get(struct bg_state *st, const struct args *a)
{
	struct filter f = { .on = true };
	if (!a->entry == !a->session ||
	    (a->entry && parse_entry(a->entry, &f))) {
		fprintf(stderr, "bygate-state: get needs --entry STREAM/ID or "
				"--session SESSION\n");
		return EXIT_USAGE;
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
	items_free(&f.keys);
	return rc ? EXIT_OPEN : found ? EXIT_OK : EXIT_FOUND;
}

/* ---- stats ---- */

static void human(char *out, size_t size, size_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int cmd_stats(struct bg_state *st, const struct args *a)
{
	struct bg_state_stats s;
	if (bg_state_get_stats(st, &s)) {
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
		return EXIT_OPEN;
	}
	if (a->json) {
		json_t *entries = json_object();
		for (int db = 0; db < BG_DB__COUNT; db++)
			json_object_set_new(entries, bg_state_db_name(db),
					    json_integer((json_int_t)s.entries[db]));
		json_t *root = json_pack(
			"{s:I s:I s:o s:I s:i s:i s:i}", "map_size",
			(json_int_t)s.map_size, "map_used",
			(json_int_t)s.map_used, "entries", entries,
			"journal_depth", (json_int_t)s.entries[BG_DB_JOURNAL],
			"readers_used", (int)s.readers_used, "readers_max",
			(int)s.readers_max, "stale_readers", s.stale_readers);
		json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(root);
		return EXIT_OK;
	}
	char size[32], used[32];
	human(size, sizeof size, s.map_size);
	human(used, sizeof used, s.map_used);
	printf("map size       %s (%zu bytes)\n", size, s.map_size);
	printf("map used       %s (%zu bytes, %.1f%%)\n", used, s.map_used,
	       s.map_size ? 100.0 * (double)s.map_used / (double)s.map_size
			  : 0.0);
	printf("entries       ");
	for (int db = 0; db < BG_DB__COUNT; db++)
		printf(" %s %zu%s", bg_state_db_name(db), s.entries[db],
		       db + 1 < BG_DB__COUNT ? "," : "\n");
	printf("journal depth  %zu\n", s.entries[BG_DB_JOURNAL]);
	printf("readers        %u used of %u, %d stale\n", s.readers_used,
	       s.readers_max, s.stale_readers);
	return EXIT_OK;
}

/* ---- check: the state against Redis ---- */

struct check {
	redisContext *redis;
	const struct bg_config *cfg;
	const char *group, *worker, *state_dir;
	bool running; /* bygated holds <state_dir>/bygated.lock */
	bool lost;    /* the connection failed: exit 3 */
	struct items known;
	struct items streams; /* id unused */
	json_t *findings;
	int agree, discrepancies, infos;
};

/* bygated holds an flock on <state_dir>/bygated.lock while it runs; the
 * kernel lists held locks by device and inode in /proc/locks, so looking
 * takes no lock (a probe with flock could make bygated's start fail). */
static bool bygated_running(const char *state_dir)
{
	char path[PATH_MAX], line[512];
	struct stat sb;
	snprintf(path, sizeof path, "%s/bygated.lock", state_dir);
	FILE *f = stat(path, &sb) == 0 ? fopen("/proc/locks", "re") : NULL;
	bool held = false;
	while (f && !held && fgets(line, sizeof line, f)) {
		if (strstr(line, "->"))
			continue; /* a waiter, not a holder */
		for (char *tok = strtok(line, " \t\n"); tok && !held;
		     tok = strtok(NULL, " \t\n")) {
			unsigned maj, min;
			unsigned long long ino;
			char end;
			if (sscanf(tok, "%x:%x:%llu%c", &maj, &min, &ino,
				   &end) == 3)
				held = maj == major(sb.st_dev) &&
				       min == minor(sb.st_dev) &&
				       ino == (unsigned long long)sb.st_ino;
		}
	}
	if (f)
		fclose(f);
	return held;
}

static void finding(struct check *c, const char *verdict, const char *what,
		    struct bg_str stream, struct bg_str id, const char *fmt,
		    ...)
{
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	c->agree += verdict[0] == 'o';
	c->discrepancies += verdict[0] == 'd';
	c->infos += verdict[0] == 'i';
	json_t *row = json_pack("{s:s s:s s:s}", "check", what, "verdict",
				verdict, "reason", reason);
	if (stream.len || id.len) {
		json_object_set_new(row, "stream", jtext(stream));
		json_object_set_new(row, "entry_id", jtext(id));
	}
	json_array_append_new(c->findings, row);
}

/* What the tool cannot settle while bygated runs is information, not a
 * discrepancy: bygated resolves it on its own within a loop turn or at
 * its next reconcile. */
static const char *soft(const struct check *c)
{
	return c->running ? "info" : "discrepancy";
}

static redisReply *command(struct check *c, int argc, const struct bg_str *argv)
{
	const char *v[8];
	size_t len[8];
	for (int i = 0; i < argc && i < 8; i++) {
		v[i] = argv[i].p;
		len[i] = argv[i].len;
	}
	redisReply *r = redisCommandArgv(c->redis, argc, v, len);
	if (r == NULL) {
		c->lost = true;
		fprintf(stderr, "bygate-state: Redis: %s\n",
			c->redis->errstr[0] ? c->redis->errstr
					    : "connection lost");
	}
	return r;
}

/* XPENDING stream group id id 1. 1 pending (consumer in *who), 0 not
 * pending, -1 error reply or unexpected shape (text in *who), -2 the
 * connection failed. */
static int entry_pending(struct check *c, struct bg_str stream,
			 struct bg_str id, struct bg_buf *who)
{
	const struct bg_str argv[] = { BG_STR_LIT("XPENDING"), stream,
				       bg_str_c(c->group), id, id,
				       BG_STR_LIT("1") };
	redisReply *r = command(c, 6, argv);
	if (r == NULL)
		return -2;
	int rc = -1;
	bg_buf_reset(who);
	if (r->type == REDIS_REPLY_ERROR) {
		bg_buf_append(who, r->str, r->len);
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 0) {
		rc = 0;
	} else if (r->type == REDIS_REPLY_ARRAY &&
		   r->element[0]->type == REDIS_REPLY_ARRAY &&
		   r->element[0]->elements >= 2 &&
		   r->element[0]->element[1]->type == REDIS_REPLY_STRING) {
		redisReply *name = r->element[0]->element[1];
		bg_buf_append(who, name->str, name->len);
		rc = 1;
	} else {
		bg_buf_puts(who, "unexpected XPENDING reply");
	}
	freeReplyObject(r);
	return rc;
}

static bool is_worker(const struct check *c, const struct bg_buf *who)
{
	return who->p && strcmp(who->p, c->worker) == 0;
}

/* What a journal or inflight entry's XPENDING answer means. */
static const struct verdicts {
	const char *what, *pending, *elsewhere, *acked;
} entry_verdicts[] = {
	{ "journal",
	  "finish journaled, entry pending: not applied yet (bygated "
	  "re-sends it)",
	  "journaled here but pending", /* under consumer C */
	  "stale journal entry (finish applied, delete pending)" },
	{ "inflight", "in flight here, entry pending",
	  "in flight here but pending",
	  "in flight here but not pending in Redis (finish applied or entry "
	  "gone; the mirror entry is stale)" },
};

/* A journaled finish pending under us is not applied yet (bygated re-sends
 * it); acked, it was applied and the journal delete is still to come. An
 * execution in flight must be pending under us. */
static void check_entry(struct check *c, const struct item *it)
{
	const struct verdicts *v = &entry_verdicts[it->kind == 'i'];
	struct bg_str s = { it->stream, it->slen }, id = { it->id, it->ilen };
	struct bg_buf who = { 0 };
	int p = entry_pending(c, s, id, &who);
	if (p == 1 && is_worker(c, &who))
		finding(c, "ok", v->what, s, id, "%s", v->pending);
	else if (p == 1)
		finding(c, "discrepancy", v->what, s, id,
			"%s under consumer %s", v->elsewhere, who.p);
	else if (p == 0)
		finding(c, soft(c), v->what, s, id, "%s", v->acked);
	else if (p == -1)
		finding(c, "discrepancy", v->what, s, id,
			"cannot tell whether the entry is pending: %s", who.p);
	bg_buf_free(&who);
}

/* This consumer's pending entries of one stream that LMDB does not know.
 * A missing stream or group has nothing pending. */
static void check_own_pel(struct check *c, struct bg_str stream)
{
	const struct bg_str argv[] = { BG_STR_LIT("XPENDING"), stream,
				       bg_str_c(c->group), BG_STR_LIT("-"),
				       BG_STR_LIT("+"),
				       BG_STR_LIT(STRINGIFY(PEL_PAGE)),
				       bg_str_c(c->worker) };
	redisReply *r = command(c, 7, argv);
	if (r == NULL)
		return;
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7))
		finding(c, "discrepancy", "pel", stream, BG_STR_LIT(""),
			"XPENDING failed: %s", r->str);
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements;
	     i++) {
		redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		struct bg_str id = { e->element[0]->str, e->element[0]->len };
		if (items_find(&c->known, stream, id) == NULL)
			finding(c, soft(c), "pel", stream, id,
				"pending in Redis, unknown here (will be "
				"reconciled or reclaimed)");
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= PEL_PAGE)
		finding(c, "info", "pel", stream, BG_STR_LIT(""),
			"only the first %d pending entries checked", PEL_PAGE);
	freeReplyObject(r);
}

static void check_lease_value(struct check *c, struct bg_str token,
			      redisReply *r)
{
	const struct bg_str none = BG_STR_LIT("");
	if (r->type == REDIS_REPLY_NIL) {
		finding(c, c->running ? "discrepancy" : "ok", "lease", none,
			none,
			c->running ? "bygated runs but the lease key is missing "
				     "(lease lapsed)"
				   : "no live lease (bygated not running)");
		return;
	}
	json_t *j = r->type == REDIS_REPLY_STRING
			    ? json_loadb(r->str, r->len, 0, NULL)
			    : NULL;
	json_t *tok = json_object_get(j, "token");
	const char *live = json_is_string(tok) ? json_string_value(tok) : "";
	if (token.len == 0)
		finding(c, "info", "lease", none, none,
			"a lease is live but no token is stored here");
	else if (live[0] == '\0')
		finding(c, "discrepancy", "lease", none, none,
			"the live lease holds no token (legacy or foreign "
			"worker)");
	else if (bg_str_eq(token, live))
		finding(c, "ok", "lease", none, none,
			"the live lease holds the stored token %.*s",
			(int)token.len, token.p);
	else
		finding(c, "discrepancy", "lease", none, none,
			"the live lease holds token %s, not the stored %.*s "
			"(another process holds worker id %s)",
			live, (int)token.len, token.p, c->worker);
	json_decref(j);
}

/* The lease token in meta against GET <worker online key>. */
static void check_lease(struct check *c, struct bg_state *st)
{
	struct bg_buf token = { 0 }, key = { 0 };
	if (bg_state_meta_get(st, "lease_token", &token))
		bg_buf_reset(&token);
	if (bg_key_build(&key, c->cfg->key_schema, BG_KEY_WORKER_ONLINE,
			 bg_str_c(c->worker), BG_STR_LIT(""), BG_STR_LIT(""))) {
		finding(c, "discrepancy", "lease", BG_STR_LIT(""),
			BG_STR_LIT(""), "invalid worker id");
	} else {
		const struct bg_str argv[] = { BG_STR_LIT("GET"),
					       { key.p, key.len } };
		redisReply *r = command(c, 2, argv);
		struct bg_str tok = { token.p ? token.p : "", token.len };
		if (r)
			check_lease_value(c, tok, r);
		freeReplyObject(r);
	}
	bg_buf_free(&token);
	bg_buf_free(&key);
}

static int add_stream(struct check *c, struct bg_str stream)
{
	for (size_t i = 0; i < c->streams.n; i++)
		if (item_is(&c->streams.v[i], stream, BG_STR_LIT("")))
			return 0;
	return items_add(&c->streams, stream, BG_STR_LIT(""), 's');
}

static int known_journal(void *arg, struct bg_str stream, struct bg_str id,
			 struct bg_str finish)
{
	struct check *c = arg;
	int rc = items_add(&c->known, stream, id, 'j');
	return rc ? rc : add_stream(c, stream);
}

static int known_exec(void *arg, struct bg_str stream, struct bg_str id,
		      const struct bg_state_exec *e)
{
	struct check *c = arg;
	int rc = items_add(&c->known, stream, id, 'i');
	return rc ? rc : add_stream(c, stream);
}

static int known_hist(void *arg, const struct bg_state_hist *h)
{
	return add_stream(arg, h->stream);
}

/* The configured agent-type streams and the worker stream. */
static int add_config_streams(struct check *c, bool from_file)
{
	struct bg_buf key = { 0 };
	int rc = 0;
	for (int i = 0; from_file && rc == 0 && i < c->cfg->n_agent_types;
	     i++) {
		bg_buf_reset(&key);
		rc = bg_key_build(&key, c->cfg->key_schema,
				  BG_KEY_AGENT_TYPE_CTRL,
				  bg_str_c(c->cfg->agent_types[i].name),
				  BG_STR_LIT(""), BG_STR_LIT(""));
		rc = rc ? rc : add_stream(c, (struct bg_str){ key.p, key.len });
	}
	bg_buf_reset(&key);
	if (rc == 0 && bg_key_build(&key, c->cfg->key_schema,
				    BG_KEY_WORKER_CTRL, bg_str_c(c->worker),
				    BG_STR_LIT(""), BG_STR_LIT("")) == 0)
		rc = add_stream(c, (struct bg_str){ key.p, key.len });
	bg_buf_free(&key);
	return rc;
}

/* Walk the state: the journal and inflight entries (known), every stream
 * they and the history name. Corrupt records are reported and skipped. */
static int load_known(struct check *c, struct bg_state *st)
{
	int rc = bg_state_journal_each(st, known_journal, c);
	if (rc == 0 || rc == BG_STATE_ECORRUPT)
		rc = bg_state_exec_each(st, known_exec, c);
	if (rc == 0 || rc == BG_STATE_ECORRUPT)
		rc = bg_state_hist_each(st, known_hist, c);
	if (rc == BG_STATE_ECORRUPT) {
		finding(c, "discrepancy", "state", BG_STR_LIT(""),
			BG_STR_LIT(""), "%s", bg_state_errmsg(st));
		rc = 0;
	}
	if (rc)
		fprintf(stderr, "bygate-state: %s\n", bg_state_errmsg(st));
	return rc;
}

static int setup_command(struct check *c, const char *what, int argc,
			 const struct bg_str *argv)
{
	redisReply *r = command(c, argc, argv);
	bool bad = r == NULL || r->type == REDIS_REPLY_ERROR;
	if (r && bad)
		fprintf(stderr, "bygate-state: Redis %s: %s\n", what, r->str);
	freeReplyObject(r);
	return bad ? -1 : 0;
}

/* Connect with the configured timeouts, then AUTH and SELECT. */
static int redis_setup(struct check *c, const char *host, int port)
{
	const struct bg_config *cfg = c->cfg;
	int ms = cfg->redis_connect_timeout_ms;
	struct timeval tv = { ms / 1000, ms % 1000 * 1000 };
	c->redis = host[0] == '/' ? redisConnectUnixWithTimeout(host, tv)
				  : redisConnectWithTimeout(host, port, tv);
	if (c->redis == NULL || c->redis->err) {
		fprintf(stderr,
			"bygate-state: cannot connect to Redis at %s:%d: %s\n",
			host, port, c->redis ? c->redis->errstr : "no memory");
		return -1;
	}
	ms = cfg->redis_command_timeout_ms;
	redisSetTimeout(c->redis,
			(struct timeval){ ms / 1000, ms % 1000 * 1000 });
	struct bg_str user = bg_str_c(cfg->redis_username);
	struct bg_str pass = bg_str_c(cfg->redis_password);
	char db[16];
	snprintf(db, sizeof db, "%d", cfg->redis_db);
	int rc = 0;
	if (pass.len && user.len)
		rc = setup_command(c, "AUTH", 3, (struct bg_str[]){
			BG_STR_LIT("AUTH"), user, pass });
	else if (pass.len)
		rc = setup_command(c, "AUTH", 2, (struct bg_str[]){
			BG_STR_LIT("AUTH"), pass });
	if (rc == 0 && cfg->redis_db != 0)
		rc = setup_command(c, "SELECT", 2, (struct bg_str[]){
			BG_STR_LIT("SELECT"), bg_str_c(db) });
	return rc;
}

static const char *jget(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

static void print_check(struct check *c)
{
	size_t n = json_array_size(c->findings);
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_array_get(c->findings, i);
		const char *v = jget(f, "verdict"), *stream = jget(f, "stream");
		const char *id = jget(f, "entry_id");
		printf("%-5s %-8s %s%s%s%s%s\n",
		       v[0] == 'o' ? "OK" : v[0] == 'i' ? "INFO" : "DIFF",
		       jget(f, "check"), stream ? stream : "",
		       stream ? " " : "", id ? id : "", stream ? ": " : "",
		       jget(f, "reason"));
	}
	printf("%s: %d agree, %d discrepancies, %d informational "
	       "(worker %s, group %s, bygated %s)\n",
	       c->discrepancies ? "DISAGREE" : "AGREE", c->agree,
	       c->discrepancies, c->infos, c->worker, c->group,
	       c->running ? "running" : "not running");
}

static void print_check_json(struct check *c)
{
	json_t *root = json_pack(
		"{s:b s:s s:s s:s s:b s:i s:i s:i s:O}", "agree",
		c->discrepancies == 0, "state_dir", c->state_dir, "worker",
		c->worker, "group", c->group, "bygated_running", c->running,
		"agreements", c->agree, "discrepancies", c->discrepancies,
		"informational", c->infos, "findings", c->findings);
	json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(root);
}

static int parse_hostport(const char *arg, char **host, int *port)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	long p = colon ? strtol(colon + 1, &end, 10) : 0;
	if (colon == NULL || colon == arg || *end != '\0' || p < 1 || p > 65535)
		return -1;
	*host = strndup(arg, (size_t)(colon - arg));
	*port = (int)p;
	return *host ? 0 : -1;
}

static int run_check(struct check *c, struct bg_state *st, bool from_file)
{
	if (load_known(c, st) || add_config_streams(c, from_file))
		return EXIT_OPEN;
	for (size_t i = 0; !c->lost && i < c->known.n; i++)
		check_entry(c, &c->known.v[i]);
	for (size_t i = 0; !c->lost && i < c->streams.n; i++)
		check_own_pel(c, (struct bg_str){ c->streams.v[i].stream,
						  c->streams.v[i].slen });
	if (!c->lost)
		check_lease(c, st);
	return c->lost ? EXIT_OPEN : c->discrepancies ? EXIT_FOUND : EXIT_OK;
}

static int cmd_check(struct bg_state *st, const struct args *a,
		     const struct bg_config *cfg, const char *state_dir)
{
	struct check c = { .cfg = cfg, .state_dir = state_dir };
	struct bg_buf meta_worker = { 0 };
	char *host = NULL;
	int port = cfg->redis_port;
	if (a->redis && parse_hostport(a->redis, &host, &port)) {
		fprintf(stderr, "bygate-state: --redis wants HOST:PORT\n");
		return EXIT_USAGE;
	}
	c.group = a->group ? a->group : cfg->consumer_group;
	c.worker = a->worker ? a->worker
		   : bg_state_meta_get(st, "worker_id", &meta_worker) == 0
			   ? meta_worker.p
			   : cfg->worker_id;
	c.running = bygated_running(state_dir);
	c.findings = json_array();
	bool from_file = a->config != NULL || a->state_dir == NULL;
	int code = redis_setup(&c, host ? host : cfg->redis_host, port)
			   ? EXIT_OPEN
			   : run_check(&c, st, from_file);
	if (code != EXIT_OPEN) {
		if (a->json)
			print_check_json(&c);
		else
			print_check(&c);
	}
	if (c.redis)
		redisFree(c.redis);
	json_decref(c.findings);
	items_free(&c.known);
	items_free(&c.streams);
	bg_buf_free(&meta_worker);
	free(host);
	return code;
}

/* ---- command line ---- */

static int usage(const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		fputs("bygate-state: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
	}
	fputs(usage_text, fmt ? stderr : stdout);
	return fmt ? EXIT_USAGE : EXIT_OK;
}

/* Options with a value, and the command each belongs to (NULL: global). */
static const struct opt {
	const char *name, *command;
	size_t off;
} opts[] = {
	{ "-d", NULL, offsetof(struct args, state_dir) },
	{ "-c", NULL, offsetof(struct args, config) },
	{ "--db", "dump", offsetof(struct args, db) },
	{ "--entry", "get", offsetof(struct args, entry) },
	{ "--session", "get", offsetof(struct args, session) },
	{ "--redis", "check", offsetof(struct args, redis) },
	{ "--group", "check", offsetof(struct args, group) },
	{ "--worker", "check", offsetof(struct args, worker) },
};

static const char *const commands[] = { "dump", "get", "stats", "check" };

static int parse_args(int argc, char **argv, struct args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const struct opt *o = NULL;
		for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++)
			if (strcmp(s, opts[k].name) == 0)
				o = &opts[k];
		if (strcmp(s, "--json") == 0) {
			a->json = true;
		} else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			return 1;
		} else if (o) {
			if (i + 1 >= argc)
				return usage("%s needs a value", s);
			*(const char **)((char *)a + o->off) = argv[++i];
		} else if (s[0] == '-' || a->command) {
			return usage("unexpected argument \"%s\"", s);
		} else {
			a->command = s;
		}
	}
	bool known = false;
	for (size_t k = 0; a->command && k < 4; k++)
		known |= strcmp(a->command, commands[k]) == 0;
	if (!known)
		return usage(a->command ? "unknown command \"%s\""
					: "no command given%s",
			     a->command ? a->command : "");
	if (a->state_dir && a->config)
		return usage("-d and -c exclude each other");
	for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
		const char *v = *(const char **)((char *)a + opts[k].off);
		if (v && opts[k].command && strcmp(opts[k].command, a->command))
			return usage("%s belongs to %s", opts[k].name,
				     opts[k].command);
	}
	return 0;
}

/* The configuration: -c or the default file; with -d only what the
 * environment says (check needs the Redis address and key schema). */
static int load_config(const struct args *a, struct bg_config *cfg)
{
	char err[512];
	const char *path = a->config       ? a->config
			   : a->state_dir ? NULL
					  : bg_config_default_path();
	if (a->state_dir && strcmp(a->command, "check") != 0)
		return 0;
	if (bg_config_load(path, cfg, err, sizeof err) == 0)
		return 0;
	fprintf(stderr, "bygate-state: %s%s\n", err,
		path && !a->config ? " (or give -d STATE_DIR)" : "");
	return -1;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int rc = parse_args(argc, argv, &a);
	if (rc)
		return rc == 1 ? usage(NULL) : rc;
	struct bg_config cfg = { 0 };
	if (load_config(&a, &cfg))
		return EXIT_OPEN;
	const char *dir = a.state_dir ? a.state_dir : cfg.state_dir;
	struct bg_state_opts o = { .dir = dir, .read_only = true };
	struct bg_state *st;
	if (bg_state_open(&o, &st, NULL)) {
		fprintf(stderr, "bygate-state: cannot open the state in %s: %s\n",
			dir, bg_state_errmsg(NULL));
		bg_config_free(&cfg);
		return EXIT_OPEN;
	}
	int code = strcmp(a.command, "dump") == 0  ? cmd_dump(st, &a)
		   : strcmp(a.command, "get") == 0 ? cmd_get(st, &a)
		   : strcmp(a.command, "stats") == 0
			   ? cmd_stats(st, &a)
			   : cmd_check(st, &a, &cfg, dir);
	bg_state_close(st);
	bg_config_free(&cfg);
	fflush(stdout);
	return code;
}
