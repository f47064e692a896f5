/* client/wait.c - following a turn to its end (include/bygate/client.h,
 * "following a turn"): the event iterator over bg_client_read_events, the
 * readable rendering of ask_user forms (WIRE 3.4), and send-and-wait: the
 * end marker of the message (WIRE 3.6), then its record until terminal, or
 * an ask_user form and the record's WAITING_USER (WIRE 6.8). */
#include "client/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "wire/record.h"

#define WAIT_DEFAULT_MS 60000
/* A Python worker writes the end marker (or the ask_user form) before
 * the record's final status: how long the record is read again. */
#define WAIT_SETTLE_MS 3000
#define WAIT_SETTLE_STEP_MS 20

/* ---- the iterator ------------------------------------------------------ */

struct owned_event {
	struct bg_client_event ev;
	char *buf; /* every string of ev, one allocation */
};

struct bg_client_events {
	struct bg_client *c;
	char *session;
	char *message_id; /* NULL: never ends */
	char last[BG_CLIENT_ENTRY_ID_MAX];
	struct owned_event *q; /* the batch of the last read */
	size_t n, pos, cap;
	bool ended; /* the end marker was delivered */
};

static bool is_end(const struct bg_client_events *it,
		   const struct bg_client_event *ev)
{
	return it->message_id && !strcmp(ev->event_type, "appStreamResponse") &&
	       !strcmp(ev->message_id, it->message_id);
}

/* Copy ev into one allocation: the strings, then content and raw (which
 * may hold NUL bytes), each NUL-terminated. */
static int own_event(struct owned_event *o, const struct bg_client_event *ev)
{
	const char *s[] = { ev->entry_id, ev->event_type, ev->message_id,
			    ev->parent_message_id, ev->source_agent_type };
	size_t len[5], total = 0;
	for (int i = 0; i < 5; i++)
		total += (len[i] = strlen(s[i])) + 1;
	total += ev->content_len + 1 + ev->raw_len + 1;
	char *p = malloc(total);
	if (p == NULL)
		return -ENOMEM;
	o->buf = p;
	const char **dst[] = { &o->ev.entry_id, &o->ev.event_type,
			       &o->ev.message_id, &o->ev.parent_message_id,
			       &o->ev.source_agent_type };
	for (int i = 0; i < 5; i++) {
		memcpy(p, s[i], len[i] + 1);
		*dst[i] = p;
		p += len[i] + 1;
	}
	o->ev.content = ev->content ? p : NULL;
	o->ev.content_len = ev->content_len;
	if (ev->content)
		memcpy(p, ev->content, ev->content_len);
	p[ev->content_len] = '\0';
	p += ev->content_len + 1;
	o->ev.raw = ev->raw ? p : NULL;
	o->ev.raw_len = ev->raw_len;
	if (ev->raw)
		memcpy(p, ev->raw, ev->raw_len);
	p[ev->raw_len] = '\0';
	o->ev.valid = ev->valid;
	return 0;
}

/* bg_event_cb of a read: queue a copy; stop after the end marker, so the
 * entries after it stay unread. */
static int queue_event(void *arg, const struct bg_client_event *ev)
{
	struct bg_client_events *it = arg;
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 16;
		struct owned_event *q = realloc(it->q, cap * sizeof *q);
		if (q == NULL)
			return bg_client_fail(it->c, -ENOMEM, "out of memory");
		it->q = q;
		it->cap = cap;
	}
	if (own_event(&it->q[it->n], ev))
		return bg_client_fail(it->c, -ENOMEM, "out of memory");
	it->n++;
	return is_end(it, ev) ? 1 : 0;
}

static void drop_batch(struct bg_client_events *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->q[i].buf);
	it->n = it->pos = 0;
}

int bg_client_events_open(struct bg_client *c, const char *session,
			  const char *from_id, const char *message_id,
			  struct bg_client_events **out)
{
	*out = NULL;
	c->errmsg[0] = '\0';
	if (session == NULL || session[0] == '\0')
		return bg_client_fail(c, -EINVAL, "a session is required");
	struct bg_client_events *it = calloc(1, sizeof *it);
	if (it == NULL)
		return bg_client_fail(c, -ENOMEM, "out of memory");
	it->c = c;
	it->session = strdup(session);
	it->message_id = message_id && message_id[0] ? strdup(message_id)
						     : NULL;
	int rc = 0;
	if (it->session == NULL ||
	    (message_id && message_id[0] && it->message_id == NULL))
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	else if (from_id == NULL || from_id[0] == '\0')
		rc = bg_client_last_entry_id(c, session, it->last);
	else if (bg_client_copy_id(it->last, sizeof it->last, from_id,
				   strlen(from_id)))
		rc = bg_client_fail(c, -EINVAL, "from id too long: %.64s",
				    from_id);
	if (rc) {
		bg_client_events_close(it);
		return rc;
	}
	*out = it;
	return 0;
}

int bg_client_events_next(struct bg_client_events *it, int timeout_ms,
			  const struct bg_client_event **ev)
{
	struct bg_client *c = it->c;
	*ev = NULL;
	c->errmsg[0] = '\0';
	int64_t deadline = bg_client_mono_ms() + timeout_ms;
	while (it->pos == it->n) {
		if (it->ended)
			return 0;
		drop_batch(it);
		int block = timeout_ms < 0 ? 0 : -1;
		if (timeout_ms > 0) {
			int64_t left = deadline - bg_client_mono_ms();
			if (left <= 0)
				return bg_client_fail(c, -ETIMEDOUT,
						      "no event within %d ms",
						      timeout_ms);
			block = (int)left;
		}
		int rc = bg_client_read_events(c, it->session, it->last, block,
					       queue_event, it, it->last);
		if (rc < 0) {
			drop_batch(it);
			return rc;
		}
		if (rc == 0 && timeout_ms == 0)
			return bg_client_fail(c, -ETIMEDOUT,
					      "no event waiting");
	}
	*ev = &it->q[it->pos++].ev;
	if (is_end(it, *ev))
		it->ended = true;
	return 1;
}

const char *bg_client_events_last_id(const struct bg_client_events *it)
{
	return it->pos ? it->q[it->pos - 1].ev.entry_id : it->last;
}

void bg_client_events_close(struct bg_client_events *it)
{
	if (it == NULL)
		return;
	drop_batch(it);
	free(it->q);
	free(it->session);
	free(it->message_id);
	free(it);
}

/* ---- ask_user forms ---------------------------------------------------- */

#define LINE_MAX_BYTES 4000 /* of one line of a question */

/* s[len] as lines, each ended by '\n', control characters shown as '?'
 * (bg_client_text_put): text from Redis cannot drive the terminal. */
static int put_lines(struct bg_buf *b, const char *s, size_t len)
{
	const char *end = s + len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		char *line = strndup(s, n); /* a NUL byte ends it early */
		int rc = line ? bg_client_text_put(b, line, LINE_MAX_BYTES, 0)
			      : -ENOMEM;
		free(line);
		if (rc || bg_buf_puts(b, "\n"))
			return -ENOMEM;
		s += n + (nl != NULL);
	}
	return 0;
}

/* The first string member of o among keys, or NULL. */
static const char *first_str(const json_t *o, const char *const *keys)
{
	for (; *keys; keys++) {
		const char *s = json_string_value(json_object_get(o, *keys));
		if (s && s[0])
			return s;
	}
	return NULL;
}

static const char *const prompt_keys[] = { "description", "question",  "q",
					   "prompt",	  "text",      "title",
					   "label",	  "fieldName", NULL };
static const char *const choice_keys[] = { "label", "text",  "value",
					   "name",  "title", NULL };

/* "  - choice" lines for the options of a field or question. */
static int add_choices(struct bg_buf *b, const json_t *q)
{
	static const char *const lists[] = { "options", "choices", "enum",
					     "values", NULL };
	const json_t *arr = NULL;
	for (const char *const *k = lists; *k && !json_is_array(arr); k++)
		arr = json_object_get(q, *k);
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = json_is_string(v) ? json_string_value(v)
						  : first_str(v, choice_keys);
		char num[32];
		if (s == NULL && json_is_number(v)) {
			snprintf(num, sizeof num, "%g", json_number_value(v));
			s = num;
		}
		if (s && (bg_buf_puts(b, "  - ") || put_lines(b, s, strlen(s))))
			return -ENOMEM;
	}
	return 0;
}

/* One field (3013) or question (3014): its prompt line and choices. */
static int add_item(struct bg_buf *b, const json_t *q)
{
	const char *p = json_is_string(q) ? json_string_value(q)
					  : first_str(q, prompt_keys);
	if (p && put_lines(b, p, strlen(p)))
		return -ENOMEM;
	return json_is_object(q) ? add_choices(b, q) : 0;
}

/* The readable text of a form's content into b. */
static int render_form(struct bg_buf *b, const char *content, size_t len)
{
	json_t *form = json_loadb(content, len, 0, NULL);
	const json_t *items = json_object_get(form, "pluginMachineFields");
	if (!json_is_array(items))
		items = json_object_get(form, "questions");
	int rc = 0;
	if (json_is_object(form)) {
		const char *title = first_str(
			form, (const char *const[]){ "title", "prompt", NULL });
		if (title)
			rc = put_lines(b, title, strlen(title));
	}
	size_t i;
	const json_t *q;
	json_array_foreach(items, i, q) {
		if (rc == 0)
			rc = add_item(b, q);
	}
	if (rc == 0 && b->len == 0) /* not a form we know: as is */
		rc = put_lines(b, content, len);
	json_decref(form);
	return rc ? -ENOMEM : 0;
}

/* Whether ev is an ask_user form: data.contentType 3013 or 3014, with a
 * content. */
static bool is_form_type(const struct bg_client_event *ev)
{
	if (!ev->valid || ev->raw == NULL || ev->content == NULL)
		return false;
	json_t *msg = json_loadb(ev->raw, ev->raw_len, JSON_ALLOW_NUL, NULL);
	const char *t = json_string_value(
		json_object_get(json_object_get(msg, "data"), "contentType"));
	bool form = t && (!strcmp(t, "3013") || !strcmp(t, "3014"));
	json_decref(msg);
	return form;
}

int bg_client_event_question(const struct bg_client_event *ev, char **text)
{
	*text = NULL;
	if (!is_form_type(ev))
		return 0;
	struct bg_buf b = { 0 };
	if (render_form(&b, ev->content, ev->content_len) ||
	    bg_buf_append(&b, "", 1)) {
		bg_buf_free(&b);
		return -ENOMEM;
	}
	*text = b.p;
	return 1;
}

/* ---- send and wait ----------------------------------------------------- */

const char *bg_wait_status_name(enum bg_wait_status s)
{
	static const char *const names[] = { "COMPLETED", "FAILED",
					     "CANCELLED", "WAITING_USER",
					     "TIMEOUT",	  "OTHER" };
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s]
							    : "OTHER";
}

void bg_send_outcome_free(struct bg_send_outcome *out)
{
	if (out == NULL)
		return;
	free(out->answer);
	free(out->question);
	free(out->form);
	free(out->record);
	out->answer = out->question = out->form = out->record = NULL;
	out->answer_len = 0;
}

/* The state of one wait. */
struct waiter {
	struct bg_client *c;
	const struct bg_wait_hooks *h;
	struct bg_send_outcome *out;
	struct bg_client_strs turn; /* the message and its sub-agents' */
	struct bg_buf finals, deltas;
	bool has_final;
	bool asked; /* a question arrived since the last settle */
};

/* Read the record of message_id into out->record / record_status until
 * want(status) or for up to window_ms. *found says whether it ended
 * wanted. */
static int settle(struct waiter *w, const char *message_id,
		  bool (*want)(struct bg_str), int window_ms, bool *found)
{
	struct bg_send_outcome *out = w->out;
	int64_t until = bg_client_mono_ms() + window_ms;
	*found = false;
	for (;;) {
		char *raw = NULL;
		size_t len = 0;
		int rc = bg_client_get_execution(w->c, out->session_id,
						 message_id, &raw, &len);
		if (rc && rc != -ENOENT)
			return rc;
		json_t *rec = raw ? json_loadb(raw, len, 0, NULL) : NULL;
		free(out->record);
		out->record = raw;
		snprintf(out->record_status, sizeof out->record_status, "%s",
			 bg_client_jstr(rec, "status"));
		snprintf(out->error_code, sizeof out->error_code, "%s",
			 bg_client_jstr(rec, "error_code"));
		snprintf(out->error, sizeof out->error, "%s",
			 bg_client_jstr(rec, "error_message"));
		json_decref(rec);
		if (want(bg_status_normalize(bg_str_c(out->record_status)))) {
			*found = true;
			return 0;
		}
		if (bg_client_mono_ms() >= until)
			return 0;
		bg_client_sleep_ms(WAIT_SETTLE_STEP_MS);
	}
}

static bool terminal(struct bg_str s)
{
	return bg_status_is_terminal(s);
}

static bool waiting_user(struct bg_str s)
{
	return bg_str_eq(s, "WAITING_USER");
}

static enum bg_wait_status status_of(const char *record_status)
{
	struct bg_str s = bg_status_normalize(bg_str_c(record_status));
	if (bg_str_eq(s, "COMPLETED"))
		return BG_WAIT_COMPLETED;
	if (bg_str_eq(s, "FAILED"))
		return BG_WAIT_FAILED;
	if (bg_str_eq(s, "CANCELLED"))
		return BG_WAIT_CANCELLED;
	return BG_WAIT_OTHER;
}

/* Note one event of the turn: its answer text or its question. */
static int note_event(struct waiter *w, const struct bg_client_event *ev)
{
	struct bg_send_outcome *out = w->out;
	if (bg_client_strs_has(&w->turn, ev->parent_message_id) &&
	    !bg_client_strs_has(&w->turn, ev->message_id) &&
	    bg_client_strs_add(&w->turn, ev->message_id,
			       strlen(ev->message_id)))
		return -ENOMEM;
	if (!bg_client_strs_has(&w->turn, ev->message_id))
		return 0;
	bool root = !strcmp(ev->message_id, out->message_id);
	if (root && ev->content && !strcmp(ev->event_type, "finalAnswer")) {
		w->has_final = true;
		if (bg_buf_append(&w->finals, ev->content, ev->content_len))
			return -ENOMEM;
	} else if (root && ev->content &&
		   !strcmp(ev->event_type, "answerDelta") &&
		   bg_buf_append(&w->deltas, ev->content, ev->content_len)) {
		return -ENOMEM;
	}
	char *text;
	int rc = bg_client_event_question(ev, &text);
	if (rc <= 0)
		return rc;
	free(out->question);
	free(out->form);
	out->question = text;
	out->form = strndup(ev->content, ev->content_len);
	snprintf(out->question_message_id, sizeof out->question_message_id,
		 "%s", ev->message_id);
	w->asked = true;
	return out->form ? 0 : -ENOMEM;
}

/* Move the answer text collected into out (finalAnswer, else chunks). */
static int take_answer(struct waiter *w)
{
	struct bg_buf *b = w->has_final ? &w->finals : &w->deltas;
	if (!w->has_final && b->len == 0)
		return 0;
	if (bg_buf_append(b, "", 1))
		return -ENOMEM;
	w->out->answer = b->p;
	w->out->answer_len = b->len - 1;
	*b = (struct bg_buf){ 0 };
	return 0;
}

/* The deadline passed: WAITING_USER when a question was asked and its
 * record says so by now (it was late), else TIMEOUT with the record's
 * status in the words of the error. */
static int timed_out(struct waiter *w, int timeout_ms)
{
	struct bg_send_outcome *out = w->out;
	bool waiting = false;
	int rc = 0;
	if (out->question)
		rc = settle(w, out->question_message_id, waiting_user, 0,
			    &waiting);
	if (rc)
		return rc;
	if (waiting) {
		out->status = BG_WAIT_WAITING_USER;
		return 0;
	}
	out->status = BG_WAIT_TIMEOUT;
	bool ignored;
	rc = settle(w, out->message_id, terminal, 0, &ignored);
	snprintf(out->error_code, sizeof out->error_code, "timeout");
	snprintf(out->error, sizeof out->error,
		 "timed out after %d ms waiting for the end of %s (status %s)",
		 timeout_ms, out->message_id,
		 out->record_status[0] ? out->record_status : "unknown");
	return rc;
}

/* Follow the turn from `from` until its end, a question or the deadline. */
static int follow(struct waiter *w, const char *from, int timeout_ms)
{
	struct bg_send_outcome *out = w->out;
	struct bg_client_events *it;
	int rc = bg_client_events_open(w->c, out->session_id, from,
				       out->message_id, &it);
	if (rc)
		return rc;
	int64_t deadline = bg_client_mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - bg_client_mono_ms();
		const struct bg_client_event *ev;
		rc = left > 0 ? bg_client_events_next(it, (int)left, &ev)
			      : -ETIMEDOUT;
		if (rc == -ETIMEDOUT) {
			rc = timed_out(w, timeout_ms);
			break;
		}
		if (rc < 0)
			break;
		if (rc == 0) { /* the end marker */
			bool done;
			rc = settle(w, out->message_id, terminal,
				    WAIT_SETTLE_MS, &done);
			out->status = status_of(out->record_status);
			break;
		}
		if (w->h && w->h->event &&
		    (rc = w->h->event(w->h->arg, ev)) < 0)
			break;
		if ((rc = note_event(w, ev)) < 0)
			break;
		if (!w->asked)
			continue;
		w->asked = false;
		bool waiting;
		rc = settle(w, out->question_message_id, waiting_user,
			    WAIT_SETTLE_MS, &waiting);
		if (rc)
			break;
		if (waiting) {
			out->status = BG_WAIT_WAITING_USER;
			break;
		}
	}
	bg_client_events_close(it);
	if (rc == 0)
		rc = take_answer(w);
	return rc;
}

int bg_client_wait_with(struct bg_client *c, const struct bg_send_request *req,
			int timeout_ms, const struct bg_wait_hooks *h,
			struct bg_send_outcome *out)
{
	memset(out, 0, sizeof *out);
	out->status = BG_WAIT_FAILED;
	if (req == NULL || req->session_id == NULL)
		return bg_client_fail(c, -EINVAL, "a session is required");
	if (timeout_ms <= 0)
		timeout_ms = WAIT_DEFAULT_MS;
	char from[BG_CLIENT_ENTRY_ID_MAX];
	int rc = bg_client_last_entry_id(c, req->session_id, from);
	if (rc)
		return rc;
	bool reply = h && h->reply;
	rc = reply ? bg_client_reply(c, req, &out->sent)
		   : bg_client_send(c, req, &out->sent);
	const struct bg_send_response *r = &out->sent;
	snprintf(out->message_id, sizeof out->message_id, "%s", r->message_id);
	snprintf(out->session_id, sizeof out->session_id, "%s",
		 r->session_id[0] ? r->session_id : req->session_id);
	snprintf(out->execution_id, sizeof out->execution_id, "%s",
		 r->execution_id);
	if (rc == BG_CLIENT_EREJECTED) {
		snprintf(out->error_code, sizeof out->error_code, "%s",
			 r->error_code);
		snprintf(out->error, sizeof out->error, "%s", r->error);
	}
	if (rc)
		return rc;
	if (h && h->sent)
		h->sent(h->arg, r);
	if (r->duplicate) /* the first's events may be written already */
		strcpy(from, "0-0");
	struct waiter w = { .c = c, .h = h, .out = out };
	rc = bg_client_strs_add(&w.turn, out->message_id,
				strlen(out->message_id));
	if (rc == 0)
		rc = follow(&w, from, timeout_ms);
	else
		rc = bg_client_fail(c, -ENOMEM, "out of memory");
	bg_client_strs_free(&w.turn);
	bg_buf_free(&w.finals);
	bg_buf_free(&w.deltas);
	return rc;
}

int bg_client_send_wait(struct bg_client *c, const struct bg_send_request *req,
			int timeout_ms, struct bg_send_outcome *out)
{
	return bg_client_wait_with(c, req, timeout_ms, NULL, out);
}

int bg_client_reply_wait(struct bg_client *c, const struct bg_send_request *req,
			 int timeout_ms, struct bg_send_outcome *out)
{
	const struct bg_wait_hooks h = { .reply = true };
	return bg_client_wait_with(c, req, timeout_ms, &h, out);
}
