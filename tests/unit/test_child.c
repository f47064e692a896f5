/* tests/unit/test_child.c - specification of bygate-child, with this test
 * playing the supervisor: it creates a segment and two doorbells, spawns
 * the real binary with them as fds 3-5, and talks to it over the rings.
 * Needs the binaries (else every test is skipped, saying so):
 *   make build/bygate-child build/plugins/echo.so build/plugins/sleep.so \
 *     build/test-plugins/{fdlist,crash,emitall,fail,big,contract}.so \
 *     build/tests/test_child && build/tests/test_child
 * BYGATE_BUILD selects another build tree (e.g. build-asan). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ipc/record.h"
#include "ipc/ring.h"
#include "ipc/segment.h"

extern char **environ;

#define SLOT 7
#define RING_BYTES (64u * 1024)
#define MAX_MESSAGE (1u << 20)
#define WAIT_MS 10000 /* generous: only a broken child takes this long */
#define MAX_FIELDS 64
#define MAX_AGENTS 16

static char g_build[PATH_MAX];

/* The test acting as bygated for one child. */
struct sup {
	struct bg_segment seg;
	int wake_child; /* fd 4 in the child */
	int wake_sup;	/* fd 5 in the child */
	pid_t pid;	/* 0 once reaped */
	struct bg_msg_in in;
	struct bg_str f[MAX_FIELDS]; /* fields of the last received message */
	uint32_t nf;
};

static const char *const needed[] = {
	"bygate-child",		  "plugins/echo.so",
	"plugins/sleep.so",	  "test-plugins/fdlist.so",
	"test-plugins/crash.so",  "test-plugins/emitall.so",
	"test-plugins/fail.so",	  "test-plugins/big.so",
	"test-plugins/contract.so",
};

static void build_path(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", g_build, rel);
}

/* Skip the calling test when the binaries are not built. */
static void require_binaries(void)
{
	char p[PATH_MAX + 64];
	for (size_t i = 0; i < sizeof(needed) / sizeof(*needed); i++) {
		build_path(p, sizeof(p), needed[i]);
		if (access(p, R_OK) != 0) {
			print_message("test_child: skipped, %s is missing (run "
				      "the make command at the top of "
				      "tests/unit/test_child.c)\n",
				      p);
			skip();
		}
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Spawn bygate-child with the segment and doorbells as fds 3, 4, 5 and
 * nothing else beyond 0-2. */
static void sup_spawn(struct sup *s, uint64_t max_message)
{
	require_binaries();
	assert_int_equal(bg_segment_create(SLOT, 1, RING_BYTES, max_message,
					   &s->seg),
			 0);
	assert_int_equal(bg_doorbell_create(&s->wake_child), 0);
	assert_int_equal(bg_doorbell_create(&s->wake_sup), 0);
	s->in.max_len = max_message;
	/* High copies first, so that dup2 onto 3-5 never clobbers a source. */
	int src[3] = { s->seg.fd, s->wake_child, s->wake_sup }, hi[3];
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < 3; i++) {
		hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 20);
		assert_true(hi[i] >= 20);
		posix_spawn_file_actions_adddup2(&fa, hi[i], 3 + i);
	}
	posix_spawn_file_actions_addclosefrom_np(&fa, 6);
	char path[PATH_MAX + 64];
	build_path(path, sizeof(path), "bygate-child");
	char *argv[] = { path, "--slot", "7", "--generation", "1", NULL };
	assert_int_equal(posix_spawn(&s->pid, path, &fa, NULL, argv, environ),
			 0);
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 3; i++)
		close(hi[i]);
}

static bool child_exited(struct sup *s)
{
	siginfo_t si = { 0 };
	return waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG | WNOWAIT) ==
		       0 &&
	       si.si_pid == s->pid;
}

/* Reap the child, waiting up to WAIT_MS; returns its wait status. */
static int sup_reap(struct sup *s)
{
	int status = 0;
	long deadline = now_ms() + WAIT_MS;
	pid_t r;
	while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 &&
	       now_ms() < deadline)
		usleep(2000);
	if (r == 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
		s->pid = 0;
		fail_msg("child did not exit");
	}
	assert_int_equal(r, s->pid);
	s->pid = 0;
	return status;
}

static int sup_setup(void **state)
{
	struct sup *s = calloc(1, sizeof(*s));
	s->wake_child = s->wake_sup = -1;
	*state = s;
	return 0;
}

/* Runs after every test, failed or skipped: no child is left behind. */
static int sup_teardown(void **state)
{
	struct sup *s = *state;
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	bg_msg_in_free(&s->in);
	bg_segment_close(&s->seg);
	if (s->wake_child >= 0)
		close(s->wake_child);
	if (s->wake_sup >= 0)
		close(s->wake_sup);
	free(s);
	return 0;
}

static void sup_send(struct sup *s, uint16_t kind, uint64_t tag,
		     const struct bg_str *v, uint32_t n)
{
	struct bg_buf b = { 0 };
	assert_int_equal(bg_rec_pack(&b, v, n), 0);
	struct bg_msg_out m = { .kind = kind, .tag = tag,
				.p = (const uint8_t *)(b.p ? b.p : ""),
				.len = (uint32_t)b.len };
	long deadline = now_ms() + WAIT_MS;
	int rc;
	while ((rc = bg_ring_send(&s->seg.down, &m)) == -EAGAIN) {
		bg_doorbell_ring(s->wake_child);
		assert_true(now_ms() < deadline);
		bg_doorbell_wait(s->wake_sup, 50);
		bg_doorbell_drain(s->wake_sup);
	}
	assert_int_equal(rc, 0);
	if (bg_ring_need_wake_consumer(&s->seg.down))
		bg_doorbell_ring(s->wake_child);
	bg_buf_free(&b);
}

/* Next up message into s->in and s->f; false when the child died with
 * nothing left in the ring. */
static bool sup_recv(struct sup *s)
{
	long deadline = now_ms() + WAIT_MS;
	for (;;) {
		bool dead = child_exited(s);
		int rc = bg_ring_recv(&s->seg.up, &s->in);
		if (bg_ring_need_wake_producer(&s->seg.up))
			bg_doorbell_ring(s->wake_child);
		assert_true(rc >= 0);
		if (rc == 1)
			break;
		if (dead)
			return false;
		assert_true(now_ms() < deadline);
		if (bg_ring_consumer_sleep_prepare(&s->seg.up))
			bg_doorbell_wait(s->wake_sup, 50);
		bg_ring_consumer_sleep_done(&s->seg.up);
		bg_doorbell_drain(s->wake_sup);
	}
	assert_int_equal(bg_rec_unpack_var(s->in.buf, s->in.len, s->f,
					   MAX_FIELDS, &s->nf),
			 0);
	return true;
}

static void expect_kind(struct sup *s, uint16_t kind, uint32_t nfields)
{
	assert_true(sup_recv(s));
	assert_int_equal(s->in.kind, kind);
	assert_int_equal(s->nf, nfields);
}

static void assert_field(const struct sup *s, uint32_t i, const char *want)
{
	assert_int_equal(s->f[i].len, strlen(want));
	assert_memory_equal(s->f[i].p, want, s->f[i].len);
}

struct agent_conf {
	const char *name;
	const char *plugin; /* relative to the build tree, or absolute */
	const char *options;
};

static const struct agent_conf std_agents[] = {
	{ "echo", "plugins/echo.so", "{}" },
	{ "sleep", "plugins/sleep.so", "{\"default_ms\": 5}" },
	{ "emitall", "test-plugins/emitall.so", "" },
	{ "fdlist", "test-plugins/fdlist.so", "{}" },
	{ "crash", "test-plugins/crash.so", "{}" },
	{ "fail", "test-plugins/fail.so", "{}" },
	{ "big", "test-plugins/big.so", "{}" },
	{ "contract", "test-plugins/contract.so", "{}" },
};
#define N_STD (sizeof(std_agents) / sizeof(*std_agents))

static void sup_config(struct sup *s, const struct agent_conf *a, size_t n)
{
	static char paths[MAX_AGENTS][PATH_MAX + 64];
	struct bg_str v[1 + BG_CONF_FIELDS_PER_TYPE * MAX_AGENTS];
	char count[8];
	assert_true(n <= MAX_AGENTS);
	snprintf(count, sizeof(count), "%zu", n);
	v[0] = bg_str_c(count);
	for (size_t i = 0; i < n; i++) {
		if (a[i].plugin[0] == '/')
			snprintf(paths[i], sizeof(paths[i]), "%s", a[i].plugin);
		else
			build_path(paths[i], sizeof(paths[i]), a[i].plugin);
		v[1 + 4 * i] = bg_str_c(a[i].name);
		v[2 + 4 * i] = bg_str_c("plugin");
		v[3 + 4 * i] = bg_str_c(paths[i]);
		v[4 + 4 * i] = bg_str_c(a[i].options);
	}
	sup_send(s, BG_REC_CONFIG, 0, v,
		 (uint32_t)(1 + BG_CONF_FIELDS_PER_TYPE * n));
}

/* A child configured with all test agents, past its HELLO. */
static void sup_start(struct sup *s, uint64_t max_message)
{
	sup_spawn(s, max_message);
	sup_config(s, std_agents, N_STD);
	expect_kind(s, BG_REC_HELLO, 2);
}

static void sup_task(struct sup *s, uint64_t tag, const char *agent,
		     const char *content)
{
	json_t *body = json_pack("{s:s,s:b}", "content", content,
				 "wait_for_reply", 0);
	char *body_s = json_dumps(body, JSON_COMPACT);
	struct bg_str v[BG_TF__COUNT];
	for (int i = 0; i < BG_TF__COUNT; i++)
		v[i] = bg_str_c("");
	v[BG_TF_AGENT_TYPE] = bg_str_c(agent);
	v[BG_TF_ACTION] = bg_str_c("ASK_AGENT");
	v[BG_TF_EXECUTION_ID] = bg_str_c("exec-9c8d7e6f");
	v[BG_TF_MESSAGE_ID] = bg_str_c("msg-1a2b3c4d");
	v[BG_TF_SESSION_ID] = bg_str_c("sess-42");
	v[BG_TF_METADATA] = bg_str_c("{\"channel\": \"web\"}");
	v[BG_TF_BODY] = bg_str_c(body_s);
	v[BG_TF_RESUMED] = bg_str_c("0");
	v[BG_TF_ATTEMPT] = bg_str_c("1");
	sup_send(s, BG_REC_TASK, tag, v, BG_TF__COUNT);
	free(body_s);
	json_decref(body);
}

static void sup_simple(struct sup *s, uint16_t kind)
{
	sup_send(s, kind, 0, NULL, 0);
}

static void expect_event(struct sup *s, uint64_t tag, const char *kind,
			 const char *content)
{
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	assert_int_equal(s->in.tag, tag);
	assert_field(s, BG_EF_KIND, kind);
	assert_field(s, BG_EF_CONTENT, content);
}

/* The RESULT of `tag` with status (as sent) and raw JSON content. */
static void expect_result(struct sup *s, uint64_t tag, const char *status,
			  const char *content_json)
{
	expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
	assert_int_equal(s->in.tag, tag);
	assert_field(s, BG_RF_STATUS, status);
	assert_field(s, BG_RF_CONTENT, content_json);
}

static void stop_and_expect_exit_0(struct sup *s)
{
	sup_simple(s, BG_REC_STOP);
	int st = sup_reap(s);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void expect_killed_by(struct sup *s, int sig)
{
	int st = sup_reap(s);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
}

static void expect_exit_code(struct sup *s, int code)
{
	int st = sup_reap(s);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), code);
}

/* ---- tests ---------------------------------------------------------- */

static void test_child_answers_config_with_hello_naming_agent_types(void **st)
{
	struct sup *s = *st;
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, std_agents, N_STD);
	expect_kind(s, BG_REC_HELLO, 2);
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)s->pid);
	assert_field(s, 0, pid);
	assert_field(s, 1, "echo,sleep,emitall,fdlist,crash,fail,big,contract");
	assert_int_equal(s->seg.hdr->score.pid, (uint32_t)s->pid);
}

static void test_child_exits_0_on_stop(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	stop_and_expect_exit_0(s);
}

static void test_echo_streams_chunks_then_result_with_the_text(void **st)
{
	const char *text = "Plan a trip to Kyoto with three stops";
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 11, "echo", text);
	char got[256] = "";
	int chunks = 0;
	for (; sup_recv(s) && s->in.kind == BG_REC_EVENT; chunks++) {
		assert_int_equal(s->in.tag, 11);
		assert_field(s, BG_EF_KIND, "chunk");
		strncat(got, s->f[BG_EF_CONTENT].p, s->f[BG_EF_CONTENT].len);
	}
	assert_true(chunks >= 2 && chunks <= 3);
	assert_string_equal(got, text);
	assert_int_equal(s->in.kind, BG_REC_RESULT);
	assert_field(s, BG_RF_STATUS, "");
	assert_field(s, BG_RF_CONTENT,
		     "\"Plan a trip to Kyoto with three stops\"");
	stop_and_expect_exit_0(s);
}

static void test_emitall_sends_its_four_events_in_order(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 12, "emitall", "go");
	expect_event(s, 12, "chunk", "Hello");
	expect_event(s, 12, "state", "A_CALLING_B");
	expect_event(s, 12, "artifact", "https://files.example/report.pdf");
	expect_event(s, 12, "sub_step", "step one");
	expect_result(s, 12, "", "\"Itinerary ready\"");
	stop_and_expect_exit_0(s);
}

static void test_child_holds_only_fds_0_to_5(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 13, "fdlist", "");
	expect_result(s, 13, "", "\"0 1 2 3 4 5\"");
	stop_and_expect_exit_0(s);
}

static void test_killed_handler_leaves_its_chunk_and_dies_of_sigkill(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 14, "crash", "kill");
	expect_event(s, 14, "chunk", "about to die");
	assert_false(sup_recv(s));
	expect_killed_by(s, SIGKILL);
}

static void test_aborting_handler_kills_the_child_with_sigabrt(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 15, "crash", "abort");
	assert_false(sup_recv(s));
	expect_killed_by(s, SIGABRT);
}

static void test_bad_plugin_path_sends_fatal_naming_it_and_exits_71(void **st)
{
	const struct agent_conf bad[] = {
		{ "echo", "plugins/echo.so", "{}" },
		{ "ghost", "/nonexistent/ghost.so", "{}" },
	};
	struct sup *s = *st;
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, bad, 2);
	expect_kind(s, BG_REC_FATAL, 1);
	char text[1024];
	snprintf(text, sizeof(text), "%.*s", (int)s->f[0].len, s->f[0].p);
	assert_non_null(strstr(text, "'ghost'"));
	assert_non_null(strstr(text, "/nonexistent/ghost.so"));
	expect_exit_code(s, 71);
}

static void test_failing_init_sends_fatal_and_exits_71(void **st)
{
	const struct agent_conf bad[] = {
		{ "sleep", "plugins/sleep.so", "{\"default_ms\": \"soon\"}" },
	};
	struct sup *s = *st;
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, bad, 1);
	expect_kind(s, BG_REC_FATAL, 1);
	char text[1024];
	snprintf(text, sizeof(text), "%.*s", (int)s->f[0].len, s->f[0].p);
	assert_non_null(strstr(text, "init()"));
	expect_exit_code(s, 71);
}

static void test_ctx_fail_yields_failed_result_with_error_fields(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 16, "fail", "x");
	expect_result(s, 16, "FAILED", "");
	assert_field(s, BG_RF_REPLY_DATA, "{\"error\":\"boom\"}");
	assert_field(s, BG_RF_ERROR, "boom");
	json_t *meta = json_loadb(s->f[BG_RF_METADATA].p,
				  s->f[BG_RF_METADATA].len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(meta,
							      "error_message")),
			    "boom");
	json_decref(meta);
	stop_and_expect_exit_0(s);
}

static void test_task_for_unknown_agent_type_fails(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 17, "nobody", "x");
	expect_result(s, 17, "FAILED", "");
	assert_field(s, BG_RF_ERROR, "no handler for agent type 'nobody'");
	stop_and_expect_exit_0(s);
}

static void test_messages_larger_than_the_ring_are_fragmented(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 18, "big", "200000"); /* about 3 rings */
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	assert_int_equal(s->f[BG_EF_CONTENT].len, 200000);
	assert_int_equal(s->f[BG_EF_CONTENT].p[199999], 'x');
	expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
	assert_int_equal(s->f[BG_RF_CONTENT].len, 200000 + 2);
	stop_and_expect_exit_0(s);
}

static void test_event_over_max_message_is_refused_not_truncated(void **st)
{
	struct sup *s = *st;
	sup_start(s, 64 * 1024);
	sup_task(s, 19, "big", "100000");
	expect_result(s, 19, "FAILED", "");
	char want[48];
	snprintf(want, sizeof(want), "handler returned %d", -EMSGSIZE);
	assert_field(s, BG_RF_ERROR, want);
	stop_and_expect_exit_0(s);
}

static void test_cancel_reaches_the_running_handler(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 20, "sleep", "60000");
	struct bg_str cancel[2] = { BG_STR_LIT("user"), BG_STR_LIT("graceful") };
	sup_send(s, BG_REC_CANCEL, 20, cancel, 2);
	expect_result(s, 20, "CANCELLED", "");
	stop_and_expect_exit_0(s);
}

static void test_stop_during_a_task_exits_after_its_result(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 21, "sleep", "50");
	sup_simple(s, BG_REC_STOP);
	expect_result(s, 21, "", "\"50\"");
	expect_exit_code(s, 0);
}

static void test_sdk_refuses_invalid_arguments_and_second_result(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 22, "contract", "");
	expect_event(s, 22, "chunk", "x");
	assert_field(s, BG_EF_EVENT_TYPE, "reasoningLogDelta");
	assert_field(s, BG_EF_CONTENT_TYPE, "3003");
	assert_field(s, BG_EF_METADATA, "{\"k\": 1}");
	expect_event(s, 22, "state", "ok");
	expect_result(s, 22, "completed",
		      "[{\"role\": \"assistant\", \"content\": \"hi\"}]");
	assert_field(s, BG_RF_REPLY_DATA, "{\"n\": 1}");
	assert_field(s, BG_RF_METADATA, "");
	stop_and_expect_exit_0(s);
}

static void test_task_sent_while_another_runs_is_run_after_it(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 23, "sleep", "30");
	sup_task(s, 24, "fdlist", "");
	expect_result(s, 23, "", "\"30\"");
	expect_result(s, 24, "", "\"0 1 2 3 4 5\"");
	stop_and_expect_exit_0(s);
}

static void test_unknown_record_kind_exits_72(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_simple(s, 99);
	expect_exit_code(s, 72);
}

int main(void)
{
	const char *b = getenv("BYGATE_BUILD");
	if (realpath(b && *b ? b : "build", g_build) == NULL)
		snprintf(g_build, sizeof(g_build), "%s", b && *b ? b : "build");
	signal(SIGPIPE, SIG_IGN);
#define T(test) cmocka_unit_test_setup_teardown(test, sup_setup, sup_teardown)
	const struct CMUnitTest tests[] = {
		T(test_child_answers_config_with_hello_naming_agent_types),
		T(test_child_exits_0_on_stop),
		T(test_echo_streams_chunks_then_result_with_the_text),
		T(test_emitall_sends_its_four_events_in_order),
		T(test_child_holds_only_fds_0_to_5),
		T(test_killed_handler_leaves_its_chunk_and_dies_of_sigkill),
		T(test_aborting_handler_kills_the_child_with_sigabrt),
		T(test_bad_plugin_path_sends_fatal_naming_it_and_exits_71),
		T(test_failing_init_sends_fatal_and_exits_71),
		T(test_ctx_fail_yields_failed_result_with_error_fields),
		T(test_task_for_unknown_agent_type_fails),
		T(test_messages_larger_than_the_ring_are_fragmented),
		T(test_event_over_max_message_is_refused_not_truncated),
		T(test_cancel_reaches_the_running_handler),
		T(test_stop_during_a_task_exits_after_its_result),
		T(test_sdk_refuses_invalid_arguments_and_second_result),
		T(test_task_sent_while_another_runs_is_run_after_it),
		T(test_unknown_record_kind_exits_72),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
