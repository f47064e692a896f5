/* tests/unit/test_child.c - specification of bygate-child, with this test
 * playing the supervisor: it creates a segment and two doorbells, spawns
 * the real binary with them as fds 3-5, and talks to it over the rings.
 * Exec handlers run the Python test agents of tests/integration/agents/.
 * Needs the binaries (else every test is skipped, saying so):
 *   make build/bygate-child build/plugins/echo.so build/plugins/sleep.so \
 *     build/test-plugins/{fdlist,crash,emitall,fail,big,contract,calls}.so \
 *     build/tests/test_child && build/tests/test_child
 * BYGATE_BUILD selects another build tree (e.g. build-asan); the source
 * tree is its parent directory, or BYGATE_SOURCE. */
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
static char g_agents[PATH_MAX]; /* tests/integration/agents of the source */

/* The test acting as bygated for one child. */
struct sup {
	struct bg_segment seg;
	int wake_child; /* fd 4 in the child */
	int wake_sup;	/* fd 5 in the child */
	pid_t pid;	/* 0 once reaped */
	struct bg_msg_in in;
	struct bg_str f[MAX_FIELDS]; /* fields of the last received message */
	uint32_t nf;
	struct bg_buf logs; /* texts of the LOG records received, a line each */
};

static const char *const needed[] = {
	"bygate-child",
	"plugins/echo.so",
	"plugins/sleep.so",
	"test-plugins/fdlist.so",
	"test-plugins/crash.so",
	"test-plugins/emitall.so",
	"test-plugins/fail.so",
	"test-plugins/big.so",
	"test-plugins/contract.so",
	"test-plugins/calls.so",
	"test-plugins/nulecho.so",
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
	posix_spawnattr_t at; /* its own process group, as bygated does */
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	char path[PATH_MAX + 64];
	build_path(path, sizeof(path), "bygate-child");
	char *argv[] = { path, "--slot", "7", "--generation", "1", NULL };
	assert_int_equal(posix_spawn(&s->pid, path, &fa, &at, argv, environ),
			 0);
	posix_spawnattr_destroy(&at);
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
		kill(-s->pid, SIGKILL); /* its exec programs too */
		waitpid(s->pid, NULL, 0);
	}
	bg_buf_free(&s->logs);
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
	struct bg_msg_out m = { .kind = kind,
				.tag = tag,
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

/* Next up message into s->in and s->f, LOG records included; false when
 * the child died with nothing left in the ring. */
static bool sup_recv_any(struct sup *s)
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

/* Next up message other than LOG (whose texts go to s->logs); false when
 * the child died with nothing left in the ring. */
static bool sup_recv(struct sup *s)
{
	while (sup_recv_any(s)) {
		if (s->in.kind != BG_REC_LOG || s->nf != 2)
			return true;
		bg_buf_append(&s->logs, s->f[1].p, s->f[1].len);
		bg_buf_puts(&s->logs, "\n");
	}
	return false;
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

/* An agent type of the CONFIG record: a plugin, or (argv set) an exec
 * handler run in tests/integration/agents. */
struct agent_conf {
	const char *name;
	const char *plugin; /* relative to the build tree, or absolute */
	const char *options;
	const char *argv; /* exec: JSON array of the command's words */
	const char *mode; /* exec: "persistent" (default) or "per_task" */
	const char *max_inflight; /* exec: default "1" */
	const char *max_line;	  /* exec: default "1048576" */
};

static const struct agent_conf std_agents[] = {
	{ .name = "echo", .plugin = "plugins/echo.so", .options = "{}" },
	{ .name = "sleep",
	  .plugin = "plugins/sleep.so",
	  .options = "{\"default_ms\": 5}" },
	{ .name = "emitall",
	  .plugin = "test-plugins/emitall.so",
	  .options = "" },
	{ .name = "fdlist",
	  .plugin = "test-plugins/fdlist.so",
	  .options = "{}" },
	{ .name = "crash", .plugin = "test-plugins/crash.so", .options = "{}" },
	{ .name = "fail", .plugin = "test-plugins/fail.so", .options = "{}" },
	{ .name = "big", .plugin = "test-plugins/big.so", .options = "{}" },
	{ .name = "contract",
	  .plugin = "test-plugins/contract.so",
	  .options = "{}" },
	{ .name = "calls", .plugin = "test-plugins/calls.so", .options = "{}" },
};
#define N_STD (sizeof(std_agents) / sizeof(*std_agents))

#define PY "[\"python3\", \"testagent.py\"]"
#define RAW "[\"python3\", \"rawagent.py\"]"
static const struct agent_conf exec_agents[] = {
	{ .name = "py", .argv = PY },
	{ .name = "py1", .argv = PY, .mode = "per_task" },
	{ .name = "raw", .argv = RAW },
	{ .name = "raw1", .argv = RAW, .mode = "per_task" },
	{ .name = "py2", .argv = PY, .max_inflight = "2" },
	{ .name = "short", .argv = RAW, .max_line = "1024" },
	{ .name = "ghost", .argv = "[\"/nonexistent/agent\"]" },
};
#define N_EXEC (sizeof(exec_agents) / sizeof(*exec_agents))

static const char * or (const char *s, const char *def)
{
	return s ? s : def;
}

/* The BG_CONF_FIELDS_PER_TYPE fields of a into f; path is storage for the
 * plugin's absolute path. */
static void conf_fields(const struct agent_conf *a, char *path, size_t n,
			struct bg_str *f)
{
	for (int k = 0; k < BG_KF__COUNT; k++)
		f[k] = bg_str_c("");
	f[BG_KF_NAME] = bg_str_c(a->name);
	f[BG_KF_OPTIONS] = bg_str_c(a->options);
	if (a->argv) {
		f[BG_KF_KIND] = bg_str_c("exec");
		f[BG_KF_ARGV] = bg_str_c(a->argv);
		f[BG_KF_WORKDIR] = bg_str_c(g_agents);
		f[BG_KF_MODE] = bg_str_c(or (a->mode, "persistent"));
		f[BG_KF_MAX_INFLIGHT] = bg_str_c(or (a->max_inflight, "1"));
		f[BG_KF_MAX_LINE] = bg_str_c(or (a->max_line, "1048576"));
		return;
	}
	if (a->plugin[0] == '/')
		snprintf(path, n, "%s", a->plugin);
	else
		build_path(path, n, a->plugin);
	f[BG_KF_KIND] = bg_str_c("plugin");
	f[BG_KF_PLUGIN] = bg_str_c(path);
}

static void sup_config(struct sup *s, const struct agent_conf *a, size_t n)
{
	static char paths[MAX_AGENTS][PATH_MAX + 64];
	struct bg_str v[1 + BG_CONF_FIELDS_PER_TYPE * MAX_AGENTS];
	char count[8];
	assert_true(n <= MAX_AGENTS);
	snprintf(count, sizeof(count), "%zu", n);
	v[0] = bg_str_c(count);
	for (size_t i = 0; i < n; i++)
		conf_fields(&a[i], paths[i], sizeof(paths[i]),
			    &v[1 + BG_CONF_FIELDS_PER_TYPE * i]);
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

/* A TASK with `extra` fields set on top of the defaults (extra[i] NULL
 * keeps field i). */
static void sup_task_ex(struct sup *s, uint64_t tag, const char *agent,
			const char *content, const char *const *extra)
{
	json_t *body =
		json_pack("{s:s,s:b}", "content", content, "wait_for_reply", 0);
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
	for (int i = 0; extra && i < BG_TF__COUNT; i++)
		if (extra[i])
			v[i] = bg_str_c(extra[i]);
	sup_send(s, BG_REC_TASK, tag, v, BG_TF__COUNT);
	free(body_s);
	json_decref(body);
}

static void sup_task(struct sup *s, uint64_t tag, const char *agent,
		     const char *content)
{
	sup_task_ex(s, tag, agent, content, NULL);
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

/* Killed by sig, or (a signal the child caught as its PID namespace's
 * init would have to) exited BG_CHILD_EXIT_TASK_DIED with the signal in
 * the scoreboard: bygated describes both alike (pool.c). */
static void expect_killed_by(struct sup *s, int sig)
{
	int st = sup_reap(s);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 75 /* TASK_DIED */) {
		assert_int_equal(s->seg.hdr->score.task_status_set, 1);
		st = (int)s->seg.hdr->score.task_status;
	}
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
	assert_field(s, 1,
		     "echo,sleep,emitall,fdlist,crash,fail,big,contract,calls");
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
		{ .name = "echo", .plugin = "plugins/echo.so", .options = "{}" },
		{ .name = "ghost",
		  .plugin = "/nonexistent/ghost.so",
		  .options = "{}" },
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
		{ .name = "sleep",
		  .plugin = "plugins/sleep.so",
		  .options = "{\"default_ms\": \"soon\"}" },
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
	assert_string_equal(
		json_string_value(json_object_get(meta, "error_message")),
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
	struct bg_str cancel[2] = { BG_STR_LIT("user"),
				    BG_STR_LIT("graceful") };
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

/* ---- SDK operations answered by bygated (CALL / REPLY) --------------- */

/* The next message is the CALL (op, id) of tag with args equal (as JSON)
 * to want. */
static void expect_call(struct sup *s, uint64_t tag, const char *op,
			const char *id, const char *want)
{
	expect_kind(s, BG_REC_CALL, BG_CF__COUNT);
	assert_int_equal(s->in.tag, tag);
	assert_field(s, BG_CF_OP, op);
	assert_field(s, BG_CF_ID, id);
	json_t *got =
		json_loadb(s->f[BG_CF_ARGS].p, s->f[BG_CF_ARGS].len, 0, NULL);
	json_t *exp = json_loads(want, 0, NULL);
	if (!json_equal(got, exp))
		print_error("CALL args %.*s, expected %s\n",
			    (int)s->f[BG_CF_ARGS].len, s->f[BG_CF_ARGS].p,
			    want);
	assert_true(json_equal(got, exp));
	json_decref(got);
	json_decref(exp);
}

static void sup_reply(struct sup *s, uint64_t tag, const char *id,
		      const char *result)
{
	struct bg_str v[BG_YF__COUNT] = { bg_str_c(id), bg_str_c(result) };
	sup_send(s, BG_REC_REPLY, tag, v, BG_YF__COUNT);
}

static void test_sdk_ask_user_sends_a_call_and_ends_waiting_user(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 30, "calls", "ask");
	expect_call(s, 30, "ask_user", "1", "{\"prompt\": \"Which city?\"}");
	sup_reply(s, 30, "1", "{\"status\":\"WAITING_USER\"}");
	expect_event(s, 30, "chunk", "{\"status\":\"WAITING_USER\"}");
	expect_result(s, 30, "WAITING_USER", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_call_agent_merges_options_and_ends_waiting_agent(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 31, "calls", "call");
	expect_call(s, 31, "call_agent", "1",
		    "{\"metadata\": {\"k\": 1}, \"target_agent_type\": "
		    "\"researcher\", \"content\": \"Find hotels\", "
		    "\"wait_for_reply\": true}");
	sup_reply(s, 31, "1",
		  "{\"status\":\"QUEUED\",\"message_id\":\"msg-5e6f7a8b\"}");
	expect_event(s, 31, "chunk",
		     "{\"status\":\"QUEUED\",\"message_id\":\"msg-5e6f7a8b\"}");
	expect_result(s, 31, "WAITING_AGENT", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_call_agent_that_failed_to_route_does_not_suspend(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 32, "calls", "call");
	expect_call(s, 32, "call_agent", "1",
		    "{\"metadata\": {\"k\": 1}, \"target_agent_type\": "
		    "\"researcher\", \"content\": \"Find hotels\", "
		    "\"wait_for_reply\": true}");
	sup_reply(s, 32, "1",
		  "{\"status\":\"FAILED\",\"message_id\":\"\",\"error\":\"no "
		  "worker\",\"error_code\":\"AGENT_TYPE_UNAVAILABLE\"}");
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	expect_result(s, 32, "", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_hand_off_without_waiting_keeps_completed(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 33, "calls", "handoff");
	expect_call(s, 33, "call_agent", "1",
		    "{\"target_agent_type\": \"writer\", \"content\": "
		    "\"Write\", \"wait_for_reply\": false}");
	sup_reply(s, 33, "1", "{\"status\":\"QUEUED\"}");
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	expect_result(s, 33, "", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_result_without_status_after_dispatch_group_waits(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 34, "calls", "group");
	expect_call(s, 34, "dispatch_group", "1",
		    "{\"tasks\": [{\"target_agent_type\": \"writer\", "
		    "\"content\": \"a\"}], \"wait_for_reply\": true}");
	sup_reply(s, 34, "1",
		  "{\"status\":\"GROUP_QUEUED\",\"task_group_id\":\"tg-1\"}");
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	expect_result(s, 34, "WAITING_AGENT", "\"dispatched\"");
	stop_and_expect_exit_0(s);
}

static void test_sdk_kv_set_then_get_and_a_missing_key(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 35, "calls", "kv");
	expect_call(s, 35, "kv_set", "1",
		    "{\"key\": \"k\", \"value\": {\"n\": 1}}");
	sup_reply(s, 35, "1", "{\"ok\":true}");
	expect_event(s, 35, "chunk", "set");
	expect_call(s, 35, "kv_get", "2", "{\"key\": \"k\"}");
	sup_reply(s, 35, "2", "{\"found\":true,\"value\":{\"n\":1}}");
	expect_event(s, 35, "chunk", "{\"n\":1}");
	expect_call(s, 35, "kv_get", "3", "{\"key\": \"missing\"}");
	sup_reply(s, 35, "3", "{\"found\":false,\"value\":null}");
	char want[16];
	snprintf(want, sizeof(want), "rc %d", -ENOENT);
	expect_event(s, 35, "chunk", want);
	expect_result(s, 35, "", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_invalid_arguments_are_refused_without_a_call(void **st)
{
	struct sup *s = *st;
	char want[16];
	snprintf(want, sizeof(want), "rc %d", -EINVAL);
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 36, "calls", "invalid");
	for (int i = 0; i < 3; i++)
		expect_event(s, 36, "chunk", want);
	expect_result(s, 36, "", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_cancel_while_waiting_for_a_reply_sets_the_flag(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 37, "calls", "cancel");
	expect_call(s, 37, "kv_get", "1", "{\"key\": \"k\"}");
	struct bg_str cancel[2] = { BG_STR_LIT("user"),
				    BG_STR_LIT("graceful") };
	sup_send(s, BG_REC_CANCEL, 37, cancel, 2);
	sup_reply(s, 37, "1", "{\"found\":true,\"value\":1}");
	expect_event(s, 37, "chunk", "1");
	expect_result(s, 37, "CANCELLED", "");
	stop_and_expect_exit_0(s);
}

static void test_sdk_reply_with_another_id_exits_72(void **st)
{
	struct sup *s = *st;
	sup_start(s, MAX_MESSAGE);
	sup_task(s, 38, "calls", "ask");
	expect_call(s, 38, "ask_user", "1", "{\"prompt\": \"Which city?\"}");
	sup_reply(s, 38, "7", "{\"status\":\"WAITING_USER\"}");
	expect_exit_code(s, 72);
}

static void test_sdk_private_dir_and_group_results_come_from_the_task(void **st)
{
	struct sup *s = *st;
	const char *extra[BG_TF__COUNT] = {
		[BG_TF_PRIVATE_DIR] = "/ws/private/msg-1",
		[BG_TF_GROUP_RESULTS] = "{\"msg-2\": {\"status\": "
					"\"COMPLETED\"}}",
	};
	sup_start(s, MAX_MESSAGE);
	sup_task_ex(s, 39, "calls", "dirs", extra);
	expect_event(s, 39, "chunk", "/ws/private/msg-1");
	expect_event(s, 39, "chunk", extra[BG_TF_GROUP_RESULTS]);
	expect_result(s, 39, "", "");
	stop_and_expect_exit_0(s);
}

/* ---- strings with U+0000 (issue 11) -------------------------------------- */

/* A TASK whose body is the raw JSON `body` and whose user_name is the n
 * bytes of `user`: both may hold 0 bytes. */
static void sup_task_nul(struct sup *s, uint64_t tag, const char *agent,
			 const char *body, const char *user, size_t n)
{
	struct bg_str v[BG_TF__COUNT];
	for (int i = 0; i < BG_TF__COUNT; i++)
		v[i] = bg_str_c("");
	v[BG_TF_AGENT_TYPE] = bg_str_c(agent);
	v[BG_TF_ACTION] = bg_str_c("ASK_AGENT");
	v[BG_TF_EXECUTION_ID] = bg_str_c("exec-9c8d7e6f");
	v[BG_TF_MESSAGE_ID] = bg_str_c("msg-1a2b3c4d");
	v[BG_TF_SESSION_ID] = bg_str_c("sess-42");
	v[BG_TF_USER_NAME] = (struct bg_str){ user, n };
	v[BG_TF_METADATA] = bg_str_c("{\"note\": \"a\\u0000b\"}");
	v[BG_TF_BODY] = bg_str_c(body);
	v[BG_TF_RESUMED] = bg_str_c("0");
	v[BG_TF_ATTEMPT] = bg_str_c("1");
	sup_send(s, BG_REC_TASK, tag, v, BG_TF__COUNT);
}

/* Field i of the last message is exactly the n bytes of want. */
static void assert_field_n(const struct sup *s, uint32_t i, const char *want,
			   size_t n)
{
	assert_int_equal(s->f[i].len, n);
	assert_memory_equal(s->f[i].p, want, n);
}

static const struct agent_conf nul_agent = {
	.name = "nulecho",
	.plugin = "test-plugins/nulecho.so",
	.options = "{}",
};

static void test_plugin_reads_content_and_user_name_whole(void **st)
{
	struct sup *s = *st;
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, &nul_agent, 1);
	expect_kind(s, BG_REC_HELLO, 2);
	sup_task_nul(s, 80, "nulecho", "{\"content\": \"ab\\u0000cd\"}",
		     "ali\0ce", 6);
	expect_result(s, 80, "",
		      "\"content=5:6162006364 user_name=6:616c69006365\"");
	/* a list content is its JSON text, the escape kept */
	sup_task_nul(s, 81, "nulecho",
		     "{\"content\": [{\"content\": \"\\u0000\"}]}", "", 0);
	expect_result(
		s, 81, "",
		"\"content=22:5b7b22636f6e74656e74223a225c7530303030227d5d"
		" user_name=0:\"");
	stop_and_expect_exit_0(s);
}

static void test_plugin_result_with_nul_reaches_the_result(void **st)
{
	struct sup *s = *st;
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, &nul_agent, 1);
	expect_kind(s, BG_REC_HELLO, 2);
	sup_task_nul(s, 82, "nulecho", "{\"content\": \"json:x\\u0000y\"}", "",
		     0);
	expect_result(s, 82, "", "\"x\\u0000y\"");
	stop_and_expect_exit_0(s);
}

/* ---- exec handlers ----------------------------------------------------- */

/* Skip the calling test when python3 or the test agents are missing. */
static void require_agents(void)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/testagent.py", g_agents);
	if (access(p, R_OK) != 0 || system("python3 -c '' 2>/dev/null") != 0) {
		print_message("test_child: skipped, needs python3 and %s\n", p);
		skip();
	}
}

static void exec_start(struct sup *s)
{
	require_agents();
	sup_spawn(s, MAX_MESSAGE);
	sup_config(s, exec_agents, N_EXEC);
	expect_kind(s, BG_REC_HELLO, 2);
}

static bool field_has(const struct sup *s, uint32_t i, const char *needle)
{
	char *f = strndup(s->f[i].p, s->f[i].len);
	bool has = strstr(f, needle) != NULL;
	if (!has)
		print_error("field %u \"%s\" lacks \"%s\"\n", i, f, needle);
	free(f);
	return has;
}

/* The next message is a FAILED result of tag whose error says want. */
static void expect_failed(struct sup *s, uint64_t tag, const char *want)
{
	expect_result(s, tag, "FAILED", "");
	assert_true(field_has(s, BG_RF_ERROR, want));
}

/* The RESULT content of a task on a healthy program. */
static void expect_ok(struct sup *s, uint64_t tag, const char *agent,
		      const char *content, const char *want_json)
{
	sup_task(s, tag, agent, content);
	expect_result(s, tag, "", want_json);
}

static void test_exec_lines_become_events_and_the_result(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 40, "py", "echo hi there");
	expect_event(s, 40, "chunk", "hi there");
	expect_event(s, 40, "state", "S");
	expect_result(s, 40, "", "\"echo: hi there\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_task_line_carries_the_task(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 41, "py", "fields");
	expect_result(s, 41, "", "");
	json_t *r = json_loadb(s->f[BG_RF_REPLY_DATA].p,
			       s->f[BG_RF_REPLY_DATA].len, 0, NULL);
	assert_string_equal(
		json_string_value(json_object_get(r, "execution_id")),
		"exec-9c8d7e6f");
	assert_string_equal(json_string_value(json_object_get(r, "message_id")),
			    "msg-1a2b3c4d");
	assert_string_equal(
		json_string_value(json_object_get(r, "action_type")),
		"ASK_AGENT");
	assert_true(json_is_false(json_object_get(r, "resumed")));
	assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 1);
	assert_true(json_is_null(json_object_get(r, "group_results")));
	assert_int_equal(json_array_size(json_object_get(r, "header_keys")),
			 12);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(r, "body"), "content")),
			    "fields");
	assert_string_equal(json_string_value(json_object_get(r, "cwd")),
			    g_agents);
	assert_string_equal(json_string_value(json_object_get(r, "agent_env")),
			    "py");
	json_decref(r);
	stop_and_expect_exit_0(s);
}

static void test_exec_program_holds_only_fds_0_to_2(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	/* 3 is the directory listing /proc/self/fd itself */
	expect_ok(s, 42, "raw", "fds", "\"ok:0 1 2 3\"");
	stop_and_expect_exit_0(s);
}

/* The pid a "pid" task of agent reports. */
static long task_pid(struct sup *s, uint64_t tag, const char *agent)
{
	sup_task(s, tag, agent, "pid");
	expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
	return strtol(s->f[BG_RF_CONTENT].p + 1, NULL, 10);
}

static void test_exec_persistent_program_serves_every_task(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	long a = task_pid(s, 43, "py"), b = task_pid(s, 44, "py");
	assert_true(a > 0);
	assert_int_equal(a, b);
	stop_and_expect_exit_0(s);
}

static void test_exec_per_task_program_is_new_for_every_task(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	long a = task_pid(s, 45, "py1"), b = task_pid(s, 46, "py1");
	assert_true(a > 0 && b > 0);
	assert_true(a != b);
	stop_and_expect_exit_0(s);
}

static void
test_exec_stderr_lines_reach_the_log_with_the_execution_id(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 47, "py", "stderr hello from python");
	expect_result(s, 47, "", "\"logged\"");
	assert_non_null(s->logs.p);
	assert_non_null(strstr(s->logs.p, "[exec-9c8d7e6f] stderr: hello "
					  "from python\n"));
	stop_and_expect_exit_0(s);
}

static void test_exec_kv_requests_are_calls_and_replies_come_back(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 48, "py", "kv");
	expect_call(s, 48, "kv_set", "1",
		    "{\"key\": \"k\", \"value\": {\"n\": 1}}");
	sup_reply(s, 48, "1", "{\"ok\":true}");
	expect_call(s, 48, "kv_get", "2", "{\"key\": \"k\"}");
	sup_reply(s, 48, "2", "{\"found\":true,\"value\":{\"n\":1}}");
	expect_result(s, 48, "", "\"{\\\"n\\\": 1}\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_ask_user_without_a_status_ends_waiting_user(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 49, "py", "ask");
	expect_call(s, 49, "ask_user", "1", "{\"prompt\": \"Which city?\"}");
	sup_reply(s, 49, "1", "{\"status\":\"WAITING_USER\"}");
	expect_result(s, 49, "WAITING_USER", "");
	stop_and_expect_exit_0(s);
}

static void test_exec_waiting_call_agent_ends_waiting_agent(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 50, "py", "call");
	expect_call(s, 50, "call_agent", "1",
		    "{\"target_agent_type\": \"researcher\", \"content\": "
		    "\"Find hotels\", \"wait_for_reply\": true}");
	sup_reply(s, 50, "1", "{\"status\":\"QUEUED\",\"message_id\":\"m\"}");
	expect_event(s, 50, "chunk",
		     "{\"message_id\": \"m\", \"status\": \"QUEUED\"}");
	expect_result(s, 50, "WAITING_AGENT", "");
	stop_and_expect_exit_0(s);
}

static void test_exec_invalid_request_gets_an_error_reply(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	expect_ok(s, 51, "py", "badcall", "\"refused: INVALID_ARGUMENT\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_cancel_reaches_the_program(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 52, "py", "cancel-wait");
	struct bg_str cancel[2] = { BG_STR_LIT("user"),
				    BG_STR_LIT("graceful") };
	sup_send(s, BG_REC_CANCEL, 52, cancel, 2);
	expect_result(s, 52, "CANCELLED", "");
	stop_and_expect_exit_0(s);
}

static void test_exec_exception_fails_the_task_not_the_program(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	long a = task_pid(s, 53, "py");
	sup_task(s, 54, "py", "raise");
	expect_failed(s, 54, "ValueError: boom");
	assert_int_equal(task_pid(s, 55, "py"), a);
	stop_and_expect_exit_0(s);
}

/* The task fails saying `want`, and the next one on the child succeeds. */
static void fails_then_recovers(struct sup *s, const char *agent,
				const char *how, const char *want)
{
	exec_start(s);
	sup_task(s, 60, agent, how);
	expect_failed(s, 60, want);
	assert_true(field_has(s, BG_RF_ERROR,
			      "exec handler 'python3' of "
			      "agent type"));
	expect_ok(s, 61, agent, "fine", "\"ok:fine\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_invalid_json_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw", "bad-json",
			    "a line that is not a JSON object: '{this is not "
			    "json'");
}

static void test_exec_over_long_line_fails_the_task(void **st)
{
	fails_then_recovers(
		*st, "raw", "long-line",
		"wrote a line longer than max_line_bytes (1048576)");
}

static void test_exec_unknown_line_type_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw", "unknown-type",
			    "unknown line type 'bogus'");
}

static void test_exec_line_for_another_task_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw", "wrong-task",
			    "does not name a task this program is running");
}

static void test_exec_program_exiting_without_result_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw", "exit-3",
			    "exited with status 3 before sending the result");
}

static void test_exec_killed_program_fails_the_task_naming_the_signal(void **st)
{
	fails_then_recovers(*st, "raw", "crash", "was killed by signal 9");
}

static void test_exec_per_task_program_exiting_early_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw1", "no-result",
			    "exited with status 0 before sending the result");
}

static void test_exec_per_task_invalid_json_fails_the_task(void **st)
{
	fails_then_recovers(*st, "raw1", "bad-json", "not a JSON object");
}

static void test_exec_failure_message_quotes_the_last_stderr_line(void **st)
{
	fails_then_recovers(*st, "raw", "exit-3",
			    "(its last stderr line: \"rawagent pid ");
}

static void test_exec_lines_without_task_name_the_only_task(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 62, "raw", "untagged");
	expect_event(s, 62, "chunk", "no task field");
	expect_result(s, 62, "", "\"untagged ok\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_program_that_cannot_start_fails_the_task(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 63, "ghost", "x");
	expect_failed(s, 63,
		      "cannot start exec handler '/nonexistent/agent' "
		      "of agent type 'ghost': execvp(): No such "
		      "file or directory");
	stop_and_expect_exit_0(s);
}

static void test_exec_task_line_over_max_line_fails_only_that_task(void **st)
{
	struct sup *s = *st;
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	exec_start(s);
	sup_task(s, 64, "short", big);
	expect_failed(s, 64,
		      "above max_line_bytes (1024) of agent type "
		      "'short'");
	expect_ok(s, 65, "short", "small", "\"ok:small\"");
	stop_and_expect_exit_0(s);
}

static void test_exec_max_inflight_runs_two_tasks_in_one_program(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 66, "py2", "sleep 400");
	sup_task(s, 67, "py2", "echo quick");
	expect_event(s, 67, "chunk", "quick");
	expect_event(s, 67, "state", "S");
	expect_result(s, 67, "", "\"echo: quick\"");
	expect_result(s, 66, "", "\"slept 400\"");
	stop_and_expect_exit_0(s);
}

/* The program dying with two tasks in it fails both as interrupted (for
 * bygated to re-run alone); dying with one fails it plainly. */
static void
test_exec_shared_program_crash_marks_its_tasks_interrupted(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 68, "py2", "sleep 3000");
	sup_task(s, 69, "py2", "crash-after 2");
	for (int i = 0; i < 2; i++) {
		expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
		assert_true(s->in.tag == 68 || s->in.tag == 69);
		assert_field(s, BG_RF_STATUS, "FAILED");
		assert_field(s, BG_RF_INTERRUPTED, "1");
	}
	sup_task(s, 70, "py2", "crash-after 1");
	expect_failed(s, 70, "killed by signal 9");
	assert_field(s, BG_RF_INTERRUPTED, "");
	stop_and_expect_exit_0(s);
}

/* Shared tasks arriving while a per_task program is still exiting after
 * its result (the supervisor saw the child idle) both start at once in a
 * new persistent program: none waits behind the other. */
static void test_exec_tasks_queued_behind_an_exiting_program_join(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 73, "py1", "linger 700");
	expect_result(s, 73, "", "\"lingering\"");
	sup_task(s, 74, "py2", "barrier 2");
	sup_task(s, 75, "py2", "barrier 2");
	for (int i = 0; i < 2; i++) {
		expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
		assert_true(field_has(s, BG_RF_CONTENT, "\"met "));
	}
	stop_and_expect_exit_0(s);
}

static void test_exec_result_extra_payload_and_trace_ids_pass_through(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	const char *extra[BG_TF__COUNT] = {
		[BG_TF_TRACE_PARENT_SPAN_ID] = "70cb4086a837a8bb",
		[BG_TF_LANGFUSE_PARENT_OBSERVATION_ID] = "obs-1",
	};
	sup_task_ex(s, 71, "py", "fields", extra);
	expect_result(s, 71, "", "");
	assert_true(field_has(s, BG_RF_REPLY_DATA,
			      "\"trace_parent_span_id\":\"70cb4086a837a8bb\""));
	assert_true(field_has(s, BG_RF_REPLY_DATA,
			      "\"langfuse_parent_observation_id\":\"obs-1\""));
	sup_task(s, 72, "py", "barrier 1");
	expect_kind(s, BG_REC_RESULT, BG_RF__COUNT);
	assert_true(field_has(s, BG_RF_EXTRA_PAYLOAD, "{\"pid\":"));
	stop_and_expect_exit_0(s);
}

static void test_exec_content_with_nul_goes_and_comes_back_whole(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task_nul(s, 83, "py", "{\"content\": \"echo a\\u0000b\"}", "", 0);
	expect_kind(s, BG_REC_EVENT, BG_EF__COUNT);
	assert_int_equal(s->in.tag, 83);
	assert_field(s, BG_EF_KIND, "chunk");
	assert_field_n(s, BG_EF_CONTENT, "a\0b", 3);
	expect_event(s, 83, "state", "S");
	expect_result(s, 83, "", "\"echo: a\\u0000b\"");
	/* the task line's header and body, as the program read them */
	sup_task_nul(s, 84, "py",
		     "{\"content\": \"fields\", \"x\": \"\\u0000\"}", "ali\0ce",
		     6);
	expect_result(s, 84, "", "");
	json_t *r = json_loadb(s->f[BG_RF_REPLY_DATA].p,
			       s->f[BG_RF_REPLY_DATA].len, JSON_ALLOW_NUL,
			       NULL);
	json_t *x = json_object_get(json_object_get(r, "body"), "x");
	assert_int_equal(json_string_length(x), 1);
	assert_int_equal(json_string_value(x)[0], '\0');
	json_decref(r);
	stop_and_expect_exit_0(s);
}

/* Wait until pid is gone or a zombie; false after WAIT_MS. */
static bool pid_ends(long pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (long end = now_ms() + WAIT_MS; now_ms() < end; usleep(10000)) {
		FILE *f = fopen(path, "r");
		if (f == NULL)
			return true;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return true;
	}
	return false;
}

/* The pid the raw agent logged for its current task. */
static long raw_agent_pid(struct sup *s)
{
	long end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		const char *p = s->logs.p ? strstr(s->logs.p, "rawagent pid ")
					  : NULL;
		if (p)
			return strtol(p + 13, NULL, 10);
		assert_true(sup_recv_any(s));
		if (s->in.kind == BG_REC_LOG) {
			bg_buf_append(&s->logs, s->f[1].p, s->f[1].len);
			bg_buf_puts(&s->logs, "\n");
		}
	}
	fail_msg("the raw agent logged no pid");
	return 0;
}

static void test_exec_program_dies_with_the_child_process_group(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	sup_task(s, 68, "raw", "hang");
	long pid = raw_agent_pid(s);
	assert_true(pid > 0);
	kill(-s->pid, SIGTERM); /* what bygated's task timeout does */
	expect_killed_by(s, SIGTERM);
	assert_true(pid_ends(pid));
}

static void test_stop_ends_the_idle_programs(void **st)
{
	struct sup *s = *st;
	exec_start(s);
	long pid = task_pid(s, 69, "py");
	stop_and_expect_exit_0(s);
	assert_true(pid_ends(pid));
}

int main(void)
{
	const char *b = getenv("BYGATE_BUILD");
	if (realpath(b && *b ? b : "build", g_build) == NULL)
		snprintf(g_build, sizeof(g_build), "%s", b && *b ? b : "build");
	const char *src = getenv("BYGATE_SOURCE");
	char up[PATH_MAX + 8], root[PATH_MAX];
	snprintf(up, sizeof(up), "%s/..", g_build);
	if (realpath(src && *src ? src : up, root) == NULL)
		snprintf(root, sizeof(root), "%.4000s", up);
	snprintf(g_agents, sizeof(g_agents), "%.4000s/tests/integration/agents",
		 root);
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
		T(test_sdk_ask_user_sends_a_call_and_ends_waiting_user),
		T(test_sdk_call_agent_merges_options_and_ends_waiting_agent),
		T(test_sdk_call_agent_that_failed_to_route_does_not_suspend),
		T(test_sdk_hand_off_without_waiting_keeps_completed),
		T(test_sdk_result_without_status_after_dispatch_group_waits),
		T(test_sdk_kv_set_then_get_and_a_missing_key),
		T(test_sdk_invalid_arguments_are_refused_without_a_call),
		T(test_sdk_cancel_while_waiting_for_a_reply_sets_the_flag),
		T(test_sdk_reply_with_another_id_exits_72),
		T(test_sdk_private_dir_and_group_results_come_from_the_task),
		T(test_plugin_reads_content_and_user_name_whole),
		T(test_plugin_result_with_nul_reaches_the_result),
		T(test_exec_lines_become_events_and_the_result),
		T(test_exec_task_line_carries_the_task),
		T(test_exec_program_holds_only_fds_0_to_2),
		T(test_exec_persistent_program_serves_every_task),
		T(test_exec_per_task_program_is_new_for_every_task),
		T(test_exec_stderr_lines_reach_the_log_with_the_execution_id),
		T(test_exec_kv_requests_are_calls_and_replies_come_back),
		T(test_exec_ask_user_without_a_status_ends_waiting_user),
		T(test_exec_waiting_call_agent_ends_waiting_agent),
		T(test_exec_invalid_request_gets_an_error_reply),
		T(test_exec_cancel_reaches_the_program),
		T(test_exec_exception_fails_the_task_not_the_program),
		T(test_exec_invalid_json_fails_the_task),
		T(test_exec_over_long_line_fails_the_task),
		T(test_exec_unknown_line_type_fails_the_task),
		T(test_exec_line_for_another_task_fails_the_task),
		T(test_exec_program_exiting_without_result_fails_the_task),
		T(test_exec_killed_program_fails_the_task_naming_the_signal),
		T(test_exec_per_task_program_exiting_early_fails_the_task),
		T(test_exec_per_task_invalid_json_fails_the_task),
		T(test_exec_failure_message_quotes_the_last_stderr_line),
		T(test_exec_lines_without_task_name_the_only_task),
		T(test_exec_program_that_cannot_start_fails_the_task),
		T(test_exec_task_line_over_max_line_fails_only_that_task),
		T(test_exec_max_inflight_runs_two_tasks_in_one_program),
		T(test_exec_shared_program_crash_marks_its_tasks_interrupted),
		T(test_exec_result_extra_payload_and_trace_ids_pass_through),
		T(test_exec_tasks_queued_behind_an_exiting_program_join),
		T(test_exec_content_with_nul_goes_and_comes_back_whole),
		T(test_exec_program_dies_with_the_child_process_group),
		T(test_stop_ends_the_idle_programs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
