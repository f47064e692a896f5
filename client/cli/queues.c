/* client/cli/queues.c - `bygate queues`: every agent type's backlog (stream
 * length, consumer-group lag, pending entries and their oldest age, the
 * consumers) as a table, or bg_client_queues's document with --json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bygate/client.h"
#include "client/client_internal.h"
#include "common/buf.h"
#include "client/cli/cli.h"

/* A JSON integer as text, "-" for null. */
static const char *num(const json_t *v, char *buf, size_t cap)
{
	if (!json_is_integer(v))
		return "-";
	snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	return buf;
}

/* A JSON integer of milliseconds as a duration (to the second from 1 s
 * on), "-" for null. */
static const char *dur(const json_t *v, char *buf, size_t cap)
{
	if (!json_is_integer(v))
		return "-";
	long long ms = json_integer_value(v);
	if (ms < 1000)
		snprintf(buf, cap, "%lldms", ms);
	else
		bg_client_duration_text(buf, cap, ms / 1000 * 1000);
	return buf;
}

static void queues_text(const json_t *doc)
{
	const json_t *types = json_object_get(doc, "agent_types");
	if (json_array_size(types) == 0) {
		printf("no agent types: no worker declares one and no agent "
		       "type stream exists\n");
		return;
	}
	struct bg_buf out = { 0 };
	static const char *const head[] = { "AGENT_TYPE",    "LENGTH",
					    "LAG",	     "PENDING",
					    "OLDEST",	     "CONSUMERS",
					    "LAST_DELIVERED" };
	static const size_t width[] = { 20, 7, 6, 8, 9, 10, 0 };
	for (size_t i = 0; i < 7; i++)
		bg_client_text_cell(&out, head[i], 64, width[i]);
	bg_client_text_end_row(&out);
	size_t i;
	const json_t *t;
	json_array_foreach(types, i, t) {
		char b[4][64];
		const json_t *cons = json_object_get(t, "consumers");
		snprintf(b[3], sizeof b[3], "%zu", json_array_size(cons));
		const char *last = cli_record_str(t, "last_delivered_id");
		const char *cells[] = {
			cli_record_str(t, "agent_type"),
			num(json_object_get(t, "length"), b[0], sizeof b[0]),
			num(json_object_get(t, "lag"), b[1], sizeof b[1]),
			num(json_object_get(t, "pending"), b[2], sizeof b[2]),
			NULL,
			json_is_true(json_object_get(t, "group_exists"))
				? b[3]
				: "no group",
			last[0] ? last : "-",
		};
		char age[64];
		cells[4] = dur(json_object_get(t, "oldest_pending_age_ms"), age,
			       sizeof age);
		for (size_t k = 0; k < 7; k++)
			bg_client_text_cell(&out, cells[k], 128, width[k]);
		bg_client_text_end_row(&out);
		size_t j;
		const json_t *k;
		json_array_foreach(cons, j, k) {
			char p[32], idle[64];
			bg_buf_puts(&out, "  consumer ");
			bg_client_text_cell(&out, cli_record_str(k, "name"),
					    128, 20);
			bg_buf_printf(&out, "pending %s  idle %s",
				      num(json_object_get(k, "pending"), p,
					  sizeof p),
				      dur(json_object_get(k, "idle_ms"), idle,
					  sizeof idle));
			bg_client_text_end_row(&out);
		}
	}
	if (out.p)
		fwrite(out.p, 1, out.len, stdout);
	bg_buf_free(&out);
}

static int queues_option(int opt, void *arg)
{
	if (opt != OPT_AGENT)
		return EXIT_USAGE;
	*(const char **)arg = optarg;
	return EXIT_OK;
}

int cmd_queues(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agent-type", required_argument, NULL, OPT_AGENT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *agent_type = NULL;
	int status = cli_parse_positional(cli, argc, argv, opts, queues_option,
					  &agent_type, NULL, 0, "");
	if (status == EXIT_OK && agent_type && !agent_type[0])
		status = cli_usage_error("%s", "queues: --agent-type is empty");
	if (status == EXIT_OK)
		status = cli_connect(cli);
	if (status != EXIT_OK)
		return status;
	char *doc;
	int rc = bg_client_queues(cli->client, agent_type, &doc);
	if (rc == -ENOENT) {
		fprintf(stderr, "bygate: queues: %s\n",
			bg_client_errmsg(cli->client));
		return EXIT_FAIL;
	}
	if (rc)
		return cli_fail(cli, "queues", rc);
	return cli_print_doc(cli, doc, queues_text);
}
