/* tests/fuzz/fuzz_protocol.c - libFuzzer target for the decoding of the
 * lines an exec program writes (bygate-handler-protocol 1, child/protocol.c
 * bg_proto_handle_line), with the validation behind it (child/ctx.c,
 * child/call.c): the program is the least trusted code bygate runs.
 *
 * The files are included whole, as the unit tests of a supervisor stage
 * do, over fakes of what is below them: the rings (bg_child_send checks
 * each record and keeps nothing), and the program (its tasks, its stdin).
 * The fakes of bg_child_prog_fail and bg_child_exec_finish do what
 * child/program.c does with the tasks; the program is freed when failed,
 * so a line handled after that is a use after free.
 *
 * Input: one byte of set-up, then the program's stdout, split into lines
 * at '\n' as child/exec.c does. The set-up byte: bits 0-1 = tasks in
 * flight in the program - 1 (tags 1, 2, ...), bits 2-7 = max_message_bytes
 * in KiB - 1 (small, so the size limits are reached). Checked besides
 * memory safety: no line makes the child die (bg_child_die), every line
 * written to the program is one JSON object without a newline, every
 * record sent fits max_message_bytes and has its kind's field count, and
 * every task ends with exactly one RESULT.
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_protocol
 * (seeds: tests/fuzz/corpus/fuzz_protocol/); `make fuzz` with libFuzzer, or
 * by hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_protocol.c \
 *     ipc/record.c common/cmdlist.c common/buf.c common/fault.c \
 *     -ljansson -o fuzz_protocol
 *   mkdir -p /tmp/fuzz_protocol
 *   ./fuzz_protocol -max_len=4096 -max_total_time=60 \
 *     /tmp/fuzz_protocol tests/fuzz/corpus/fuzz_protocol
 */
#include "child/call.c"
#include "child/ctx.c"
#include "child/protocol.c"
#include "child/task.c"

#include <stdarg.h>

#include "tests/fuzz/check.h"

#define MAX_TASKS 4
#define MAX_LINE 8192 /* the program's max_line_bytes */

static struct bg_seg_hdr hdr;
static struct bg_child_proc proc;
static struct bg_exec exec_conf = { .max_line = MAX_LINE, .max_inflight = 4 };
static struct bg_agent agent = { .name = "fuzz", .exec = &exec_conf };
static struct bg_prog *prog;		/* NULL once failed (and freed) */
static unsigned results[MAX_TASKS + 1]; /* RESULT records sent, per tag */

/* ---- fakes of channel.c and proc.c ---- */

static void check_record(uint16_t kind, uint64_t tag, const void *p, size_t len)
{
	static const struct {
		uint16_t kind;
		uint32_t fields;
	} kinds[] = { { BG_REC_EVENT, BG_EF__COUNT },
		      { BG_REC_RESULT, BG_RF__COUNT },
		      { BG_REC_CALL, BG_CF__COUNT },
		      { BG_REC_LOG, 2 } };
	struct bg_str v[BG_TF__COUNT];
	size_t i = 0;
	while (i < sizeof kinds / sizeof *kinds && kinds[i].kind != kind)
		i++;
	CHECK(i < sizeof kinds / sizeof *kinds);
	CHECK(bg_rec_unpack(p, len, v, kinds[i].fields) == 0);
	CHECK(tag <= MAX_TASKS);
	if (kind == BG_REC_RESULT)
		CHECK(++results[tag] == 1);
}

int bg_child_send(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
		  const struct bg_str *v, uint32_t n)
{
	bg_buf_reset(&c->out);
	int rc = bg_rec_pack(&c->out, v, n);
	if (rc == 0 && c->out.len > bg_child_max_message(c))
		rc = -EMSGSIZE;
	if (rc == 0)
		check_record(kind, tag, c->out.p, c->out.len);
	return rc;
}

int bg_child_send_packed(struct bg_child_proc *c, uint16_t kind, uint64_t tag,
			 const void *p, size_t len)
{
	if (len > bg_child_max_message(c))
		return -EMSGSIZE;
	check_record(kind, tag, p, len);
	return 0;
}

size_t bg_child_max_message(const struct bg_child_proc *c)
{
	return c->seg.hdr->max_message;
}

void bg_child_poll(struct bg_child_proc *c)
{
}

void bg_child_await_reply(struct bg_child_proc *c, uint64_t tag, const char *id,
			  struct bg_str *result)
{
	CHECK(!"an exec task never waits for a REPLY in the child");
}

_Noreturn void bg_child_die(struct bg_child_proc *c, int code, const char *fmt,
			    ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bg_child_die(%d): ", code);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort(); /* a program's output must never end the child */
}

void bg_child_score(struct bg_child_proc *c, enum bg_score_state st,
		    uint64_t tag)
{
}

bool bg_child_mem_refused(void)
{
	return false;
}

struct bg_agent *bg_child_find_agent(struct bg_child_proc *c, const char *name)
{
	return NULL;
}

/* ---- fakes of program.c ---- */

void bg_child_exec_finish(struct bg_child_proc *c, struct bg_ctx *ctx)
{
	for (struct bg_ctx **pp = &c->exec_tasks; *pp; pp = &(*pp)->next)
		if (*pp == ctx) {
			*pp = ctx->next;
			break;
		}
	if (ctx->prog)
		ctx->prog->n_tasks--;
	bg_child_finish(c, ctx);
}

void bg_child_prog_fail(struct bg_child_proc *c, struct bg_prog *p,
			const char *what)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "exec handler 'fuzz' %s", what);
	bool shared = p->n_tasks > 1;
	for (struct bg_ctx *x = c->exec_tasks, *next; x; x = next) {
		next = x->next;
		if (x->prog == p) {
			x->interrupted = shared;
			bg_child_fail_task(x, msg);
			bg_child_exec_finish(c, x);
		}
	}
	CHECK(p == prog && p->n_tasks == 0);
	free(p);
	prog = NULL;
}

int bg_child_prog_write(struct bg_child_proc *c, struct bg_prog *p,
			const char *line, size_t len)
{
	CHECK(p == prog);
	if (len > p->agent->exec->max_line) {
		bg_child_prog_fail(c, p, "was to be sent a line too long");
		return -1;
	}
	json_t *j = json_loadb(line, len, 0, NULL);
	CHECK(json_is_object(j));
	CHECK(memchr(line, '\n', len) == NULL);
	json_decref(j);
	return 0;
}

/* ---- the program and its tasks ---- */

static void add_task(uint64_t tag)
{
	struct bg_str v[BG_TF__COUNT] = { { 0 } };
	struct bg_buf payload = { 0 };
	struct bg_ctx *ctx = calloc(1, sizeof(*ctx));
	CHECK(ctx != NULL);
	ctx->task = calloc(1, sizeof(*ctx->task));
	CHECK(ctx->task != NULL);
	v[BG_TF_AGENT_TYPE] = bg_str_c("fuzz");
	v[BG_TF_ACTION] = bg_str_c("ASK_AGENT");
	v[BG_TF_EXECUTION_ID] = bg_str_c("exec-fuzz");
	v[BG_TF_MESSAGE_ID] = bg_str_c("msg-fuzz");
	v[BG_TF_BODY] = bg_str_c("{\"content\":\"hello\"}");
	v[BG_TF_ATTEMPT] = bg_str_c("1");
	CHECK(bg_rec_pack(&payload, v, BG_TF__COUNT) == 0);
	CHECK(bg_child_task_parse(ctx->task, (const uint8_t *)payload.p,
				  payload.len) == 0);
	bg_buf_free(&payload);
	ctx->c = &proc;
	ctx->tag = tag;
	ctx->agent = &agent;
	ctx->prog = prog;
	ctx->next = proc.exec_tasks;
	proc.exec_tasks = ctx;
	prog->n_tasks++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned setup = size ? data[0] : 0;
	int n_tasks = (int)(setup & 3) + 1;
	const char *p = size ? (const char *)data + 1 : "";
	size_t left = size ? size - 1 : 0;

	memset(results, 0, sizeof results);
	memset(&hdr, 0, sizeof hdr);
	hdr.max_message = ((setup >> 2) + 1) * 1024;
	proc = (struct bg_child_proc){ .seg.hdr = &hdr };
	prog = calloc(1, sizeof(*prog));
	CHECK(prog != NULL);
	prog->agent = &agent;
	prog->pid = -1;
	for (int t = 1; t <= n_tasks; t++)
		add_task((uint64_t)t);

	/* exec.c: a line at a time, '\r' before the '\n' dropped, empty
	 * lines skipped, a last line without its newline handled too. */
	while (prog != NULL && left > 0) {
		const char *nl = memchr(p, '\n', left);
		size_t len = nl ? (size_t)(nl - p) : left;
		/* a heap copy of exactly the line: reads past it are caught */
		char *line = malloc(len ? len : 1);
		CHECK(line != NULL);
		memcpy(line, p, len);
		p += nl ? len + 1 : len;
		left -= nl ? len + 1 : len;
		if (len && line[len - 1] == '\r')
			len--;
		if (len > MAX_LINE)
			bg_child_prog_fail(&proc, prog,
					   "wrote a line too long");
		else if (len)
			bg_proto_handle_line(&proc, prog, line, len);
		free(line);
	}
	/* The program exits: what it still runs fails (program.c). */
	if (prog != NULL)
		bg_child_prog_fail(&proc, prog, "exited");
	CHECK(proc.exec_tasks == NULL);
	for (int t = 1; t <= n_tasks; t++)
		CHECK(results[t] == 1);
	bg_buf_free(&proc.out);
	return 0;
}
