/* child/taskwatch.c - the child's side of a task process (taskproc.c):
 * its output (stdout and stderr share one pipe) logged a line at a time,
 * escaped, cut and bounded, with the task's execution id; and once it has
 * ended, every process it left behind killed. */
#include "child/child.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUTPUT_CAP (64 * 1024) /* bytes of a task's output logged */
#define LINE_CAP 1024	       /* bytes of one logged line */

/* ---- output ------------------------------------------------------------- */

/* Append s[0..n) with control bytes and backslashes escaped. */
static void escape_into(struct bg_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\\')
			bg_buf_puts(b, "\\\\");
		else if (ch < 0x20 || ch == 0x7f)
			bg_buf_printf(b, "\\x%02x", ch);
		else
			bg_buf_append(b, &s[i], 1);
	}
}

void bg_child_output_init(struct bg_task_output *o, struct bg_str execution_id)
{
	struct bg_buf id = { 0 };
	*o = (struct bg_task_output){ .fd = -1 };
	escape_into(&id, execution_id.p,
		    execution_id.len < 80 ? execution_id.len : 80);
	snprintf(o->id, sizeof(o->id), "%.*s", (int)id.len, id.p ? id.p : "");
	bg_buf_free(&id);
}

static void emit_line(struct bg_child_proc *c, struct bg_task_output *o)
{
	struct bg_buf msg = { 0 };
	bg_buf_printf(&msg, "bygate-child[slot %ld]: %s: ", c->slot, o->id);
	escape_into(&msg, o->line.p ? o->line.p : "", o->line.len);
	if (o->cut)
		bg_buf_puts(&msg, " [line cut]");
	bg_buf_puts(&msg, "\n");
	if (msg.p && o->logged + o->line.len <= OUTPUT_CAP) {
		ssize_t w = write(STDERR_FILENO, msg.p, msg.len);
		(void)w;
		o->logged += o->line.len;
	} else {
		o->dropped += o->line.len;
	}
	bg_buf_free(&msg);
	bg_buf_reset(&o->line);
	o->cut = false;
}

/* Read what the pipe holds now; false at EOF or error. */
bool bg_child_output_read(struct bg_child_proc *c, struct bg_task_output *o)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(o->fd, buf, sizeof(buf));
		if (n == 0)
			return false;
		if (n == -1)
			return errno == EAGAIN || errno == EINTR;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				emit_line(c, o);
				continue;
			}
			if (o->line.len < LINE_CAP)
				bg_buf_append(&o->line, &buf[i], 1);
			else if (!o->cut)
				o->cut = true;
			if (o->cut)
				o->dropped++;
		}
	}
}

void bg_child_output_end(struct bg_child_proc *c, struct bg_task_output *o)
{
	if (o->line.len)
		emit_line(c, o);
	if (o->dropped)
		bg_child_warn(c,
			      "%s: %zu bytes of the task's output not logged "
			      "(at most %d per task, lines cut at %d)",
			      o->id, o->dropped, OUTPUT_CAP, LINE_CAP);
	bg_buf_free(&o->line);
	close(o->fd);
}

/* ---- what a task leaves behind ------------------------------------------ */

static bool is_program(struct bg_child_proc *c, pid_t pid)
{
	for (struct bg_prog *p = c->progs; p; p = p->next)
		if (p->pid == pid && !p->reaped)
			return true;
	return false;
}

/* pid h of procfs's PID namespace (the host's: /proc is not remounted)
 * as our own namespace numbers it: the last NSpid of /proc/h/status. */
static pid_t ns_pid(pid_t h)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)h);
	FILE *f = fopen(path, "re");
	pid_t pid = h;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "NSpid:", 6)) {
			char *last = strrchr(line, '\t');
			pid = last ? (pid_t)strtol(last + 1, NULL, 10) : h;
			break;
		}
	if (f)
		fclose(f);
	return pid;
}

/* Our children now, in our PID namespace's numbers:
 * /proc/self/task/<tid>/children of every thread. */
static size_t list_children(pid_t *out, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] == '.')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/self/task/%s/children",
			 e->d_name);
		FILE *f = fopen(path, "re");
		long pid;
		while (f && n < max && fscanf(f, "%ld", &pid) == 1)
			out[n++] = (pid_t)pid;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		out[i] = ns_pid(out[i]);
	return n;
}

/* Kill every process the task left: its orphans are re-parented to us
 * (PID namespace init, or subreaper), their children follow when they
 * die, so repeat until only the persistent programs are left. */
void bg_child_kill_leftovers(struct bg_child_proc *c)
{
	pid_t pids[512];
	/* Nothing is left when we have no child at all (the usual case of a
	 * plugin task without programs): skip the /proc walk. */
	siginfo_t si;
	if (c->progs == NULL &&
	    waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1 &&
	    errno == ECHILD)
		return;
	for (int round = 0; round < 10000; round++) {
		size_t n = list_children(pids, 512), killed = 0;
		for (size_t i = 0; i < n; i++) {
			if (is_program(c, pids[i]))
				continue;
			kill(pids[i], SIGKILL);
			killed++;
		}
		for (size_t i = 0; i < n; i++)
			if (!is_program(c, pids[i]))
				while (waitpid(pids[i], NULL, 0) == -1 &&
				       errno == EINTR)
					;
		if (killed == 0)
			return;
	}
	bg_child_warn(c, "processes left by a task survive 10000 rounds of "
			 "SIGKILL");
}
