/* examples/client/send_wait.c - send a task and wait for its answer with
 * libbygate (docs/client.md "libbygate: send and wait"), answering the
 * agent's questions (ask_user) from standard input:
 *
 *	send_wait AGENT_TYPE SESSION TEXT
 *
 * `make` builds it as build/examples/send_wait; once libbygate is installed:
 *	cc -o send_wait send_wait.c $(pkg-config --cflags --libs bygate)
 * Exit status: 0 COMPLETED, 1 any other end, 3 no connection. */
#include <bygate/client.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 4)
		errx(2, "usage: send_wait AGENT_TYPE SESSION TEXT");
	struct bg_client *c;
	char e[256];
	if (bg_client_open(getenv("BYGATE_CONFIG"), &c, e, sizeof e))
		errx(3, "%s", e);
	struct bg_send_request req = { .agent_type = argv[1],
				       .session_id = argv[2],
				       .content = argv[3] };
	struct bg_send_outcome out;
	char answer[1024], mid[BG_CLIENT_ID_MAX];
	int rc = bg_client_send_wait(c, &req, 60000, &out);
	while (rc == 0 && out.status == BG_WAIT_WAITING_USER) {
		printf("%s> ", out.question);
		fflush(stdout);
		if (!fgets(answer, sizeof answer, stdin))
			break; /* no answer: report WAITING_USER */
		answer[strcspn(answer, "\n")] = '\0';
		snprintf(mid, sizeof mid, "%s", out.question_message_id);
		struct bg_send_request reply = { .session_id = argv[2],
						 .message_id = mid,
						 .content = answer };
		bg_send_outcome_free(&out);
		rc = bg_client_reply_wait(c, &reply, 60000, &out);
	}
	if (rc && rc != BG_CLIENT_EREJECTED)
		errx(1, "%s: %s", bg_client_strerror(rc), bg_client_errmsg(c));
	printf("%s %s\n%s\n", out.message_id, bg_wait_status_name(out.status),
	       out.answer ? out.answer : out.error);
	int status = out.status == BG_WAIT_COMPLETED ? 0 : 1;
	bg_send_outcome_free(&out);
	bg_client_close(c);
	return status;
}
