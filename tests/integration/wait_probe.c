/* tests/integration/wait_probe.c - drives libbygate's send-and-wait and
 * event iterator for tests/integration/test_send_wait.py (compiled there
 * against the build's archives). One JSON line per result on stdout.
 *
 *   wait_probe send AGENT SESSION CONTENT TIMEOUT_MS [POLICY]
 *   wait_probe reply SESSION MESSAGE_ID CONTENT TIMEOUT_MS
 *   wait_probe events SESSION FROM MESSAGE_ID TIMEOUT_MS
 *   wait_probe errors AGENT SESSION
 *
 * Connection from REDIS_HOST / REDIS_PORT. Exit 0 unless the library
 * failed (1) or, for errors, an error text repeats the code's (1). */
#include <bygate/client.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void put(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(o);
	fflush(stdout);
}

static int outcome(int rc, const struct bg_client *c,
		   const struct bg_send_outcome *o)
{
	json_t *j = json_pack(
		"{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "rc", rc,
		"status", bg_wait_status_name(o->status), "record_status",
		o->record_status, "message_id", o->message_id, "session_id",
		o->session_id, "execution_id", o->execution_id, "error_code",
		o->error_code, "error", o->error, "question_message_id",
		o->question_message_id, "errmsg", bg_client_errmsg(c));
	json_object_set_new(j, "answer",
			    o->answer ? json_stringn(o->answer, o->answer_len)
				      : json_null());
	json_object_set_new(j, "question",
			    o->question ? json_string(o->question)
					: json_null());
	json_object_set_new(j, "form",
			    o->form ? json_string(o->form) : json_null());
	put(j);
	return rc && rc != BG_CLIENT_EREJECTED ? 1 : 0;
}

static int events(struct bg_client *c, char **a)
{
	struct bg_client_events *it;
	int rc = bg_client_events_open(c, a[0], a[1], a[2], &it);
	const struct bg_client_event *ev;
	while (rc == 0 &&
	       (rc = bg_client_events_next(it, atoi(a[3]), &ev)) == 1) {
		put(json_pack("{s:s, s:s, s:s, s:s%}", "entry_id", ev->entry_id,
			      "event_type", ev->event_type, "message_id",
			      ev->message_id, "content",
			      ev->content ? ev->content : "", ev->content_len));
		rc = 0;
	}
	put(json_pack("{s:s, s:i, s:s}", "end", rc == 0 ? "end" : "error", "rc",
		      rc, "last_id", it ? bg_client_events_last_id(it) : ""));
	bg_client_events_close(it);
	return 0;
}

/* A failure's code and details: the details must not repeat the code's
 * own text (bg_client_strerror). */
static int check(const char *what, int rc, const struct bg_client *c)
{
	const char *code = bg_client_strerror(rc), *msg = bg_client_errmsg(c);
	bool twice = rc && msg[0] && strstr(msg, code) != NULL;
	put(json_pack("{s:s, s:i, s:s, s:s, s:b}", "case", what, "rc", rc,
		      "code", code, "errmsg", msg, "repeated", twice));
	return twice;
}

static int errors(struct bg_client *c, char **a)
{
	struct bg_send_response r;
	int bad = 0;
	struct bg_send_request req = { .agent_type = a[0],
				       .session_id = a[1],
				       .content = "x" };
	bad |= check("rejected send", bg_client_send(c, &req, &r), c);
	req.metadata = "[1";
	bad |= check("bad metadata", bg_client_send(c, &req, &r), c);
	req.metadata = NULL;
	req.content = " ";
	bad |= check("blank content", bg_client_send(c, &req, &r), c);
	struct bg_send_request rep = { .session_id = a[1],
				       .message_id = "msg-unknown",
				       .content = "yes" };
	bad |= check("reply to an unknown message",
		     bg_client_reply(c, &rep, &r), c);
	struct bg_client_events *it;
	bad |= check("events without a session",
		     bg_client_events_open(c, "", NULL, NULL, &it), c);
	bg_client_interrupt(c);
	char id[BG_CLIENT_ENTRY_ID_MAX];
	bad |= check("interrupted", bg_client_last_entry_id(c, a[1], id), c);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	struct bg_client *c;
	char e[256];
	if (bg_client_open(NULL, &c, e, sizeof e)) {
		fprintf(stderr, "wait_probe: %s\n", e);
		return 3;
	}
	int status = 2;
	struct bg_send_outcome o;
	if (!strcmp(argv[1], "send") && argc >= 6) {
		struct bg_send_request req = {
			.agent_type = argv[2],
			.session_id = argv[3],
			.content = argv[4],
			.route_policy = argc > 6 ? argv[6] : NULL,
		};
		int rc = bg_client_send_wait(c, &req, atoi(argv[5]), &o);
		status = outcome(rc, c, &o);
		bg_send_outcome_free(&o);
	} else if (!strcmp(argv[1], "reply") && argc == 6) {
		struct bg_send_request req = { .session_id = argv[2],
					       .message_id = argv[3],
					       .content = argv[4] };
		int rc = bg_client_reply_wait(c, &req, atoi(argv[5]), &o);
		status = outcome(rc, c, &o);
		bg_send_outcome_free(&o);
	} else if (!strcmp(argv[1], "events") && argc == 6) {
		status = events(c, argv + 2);
	} else if (!strcmp(argv[1], "errors") && argc == 4) {
		status = errors(c, argv + 2);
	}
	bg_client_close(c);
	return status;
}
