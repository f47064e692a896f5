/* client/cli/top_screen.c - `bygate top`'s screen (top_frame.h): a frame as
 * text columns, drawn over the terminal with plain ANSI escapes, and the
 * keys (q quit, s sort, / filter). */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client/cli/cli.h"
#include "client/cli/top_frame.h"
#include "common/buf.h"

#define CHILDREN_SHOWN 20
#define FAILURES_SHOWN 8

const char *const top_sort_keys[TOP_N_SORTS] = { "backlog", "rate",   "running",
						 "p99",	    "failed", "name" };

/* An integer column, "-" when unknown. */
static const char *col_i(const json_t *o, const char *key, char *buf, size_t n)
{
	if (!top_known(o, key))
		return "-";
	snprintf(buf, n, "%lld", (long long)top_num(o, key));
	return buf;
}

/* A duration: 850ms, 12.3s, 4m05s, 2h10m; "-" when unknown. */
static const char *col_ms(const json_t *o, const char *key, char *buf, size_t n)
{
	if (!top_known(o, key))
		return "-";
	long long ms = (long long)top_num(o, key);
	if (ms < 1000)
		snprintf(buf, n, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, n, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else
		snprintf(buf, n, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
	return buf;
}

static bool matches(const struct top *tp, const char *a, const char *b)
{
	return tp->filter[0] == '\0' || strstr(a, tp->filter) ||
	       (b && strstr(b, tp->filter));
}

static double sort_value(const json_t *t, int sort)
{
	switch (sort) {
	case 0:
		return top_num(t, "backlog");
	case 1:
		return top_num(t, "rate");
	case 2:
		return top_num(t, "running");
	case 3:
		return top_num(t, "run_ms_p99");
	case 4:
		return top_num(t, "failed");
	}
	return 0;
}

static int g_sort; /* for qsort */

static int cmp_types(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	if (g_sort < TOP_N_SORTS - 1) {
		double u = sort_value(x, g_sort), v = sort_value(y, g_sort);
		if (u != v)
			return u < v ? 1 : -1; /* largest first */
	}
	return strcmp(top_str(x, "agent_type"), top_str(y, "agent_type"));
}

static int cmp_children(const void *a, const void *b)
{
	double u = top_num(*(json_t *const *)a, "elapsed_ms"),
	       v = top_num(*(json_t *const *)b, "elapsed_ms");
	return (u < v) - (u > v);
}

/* arr's items in a malloc'd array, sorted by cmp; *n their count. */
static json_t **sorted(json_t *arr, int (*cmp)(const void *, const void *),
		       size_t *n)
{
	*n = json_array_size(arr);
	json_t **v = calloc(*n ? *n : 1, sizeof(*v));
	if (v == NULL) {
		*n = 0;
		return NULL;
	}
	for (size_t i = 0; i < *n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, *n, sizeof(*v), cmp);
	return v;
}

static void render(struct top *tp, json_t *frame, struct bg_buf *o, bool screen)
{
	char a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32], k[32],
		l[32];
	time_t now = (time_t)(top_num(frame, "now_ms") / 1000);
	struct tm tm;
	gmtime_r(&now, &tm);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	bg_buf_printf(o, "bygate top - %s UTC - %s%s  sort: %s  filter: %s\n",
		      ts, top_str(frame, "source"),
		      tp->replay ? " (event log)" : "", top_sort_keys[tp->sort],
		      tp->filter[0] ? tp->filter : "-");
	if (screen)
		bg_buf_puts(o, "keys: q quit  s sort  / filter\n");

	bg_buf_puts(o, "\nWORKERS\n");
	bg_buf_printf(o, "  %-24s %-7s %-10s %4s %9s %6s  %s\n", "worker",
		      "lease", "lifecycle", "gen", "busy/size", "tasks",
		      "http");
	size_t i, n;
	json_t *w;
	json_array_foreach(json_object_get(frame, "workers"), i, w) {
		json_t *online = json_object_get(w, "online");
		json_t *pool = json_object_get(w, "pool");
		if (pool && json_is_object(pool))
			snprintf(b, sizeof(b), "%lld/%lld",
				 (long long)top_num(pool, "busy"),
				 (long long)top_num(pool, "size"));
		else
			snprintf(b, sizeof(b), "-");
		bg_buf_printf(o, "  %-24s %-7s %-10s %4s %9s %6s  %s\n",
			      top_str(w, "worker_id"),
			      json_is_true(online)    ? "online"
			      : json_is_false(online) ? "offline"
						      : "-",
			      *top_str(w, "lifecycle") ? top_str(w, "lifecycle")
						       : "-",
			      col_i(w, "generation", a, sizeof(a)), b,
			      col_i(w, "tasks", c, sizeof(c)),
			      *top_str(w, "http") ? top_str(w, "http") : "-");
	}

	bg_buf_puts(o, "\nAGENT TYPES\n");
	bg_buf_printf(o,
		      "  %-20s %8s %8s %8s %8s %8s %7s %8s %7s %7s %8s %6s\n",
		      "agent_type", "length", "lag", "pending", "backlog",
		      "oldest", "running", "rate/s", "p50", "p99", "done",
		      "failed");
	g_sort = tp->sort;
	json_t **types =
		sorted(json_object_get(frame, "agent_types"), cmp_types, &n);
	for (i = 0; i < n; i++) {
		json_t *t = types[i];
		if (!matches(tp, top_str(t, "agent_type"), NULL))
			continue;
		char rate[32];
		if (top_known(t, "rate"))
			snprintf(rate, sizeof(rate), "%.1f",
				 top_num(t, "rate"));
		else
			snprintf(rate, sizeof(rate), "-");
		bg_buf_printf(
			o,
			"  %-20s %8s %8s %8s %8s %8s %7s %8s %7s %7s %8s %6s\n",
			top_str(t, "agent_type"),
			col_i(t, "length", a, sizeof(a)),
			col_i(t, "lag", b, sizeof(b)),
			col_i(t, "pending", c, sizeof(c)),
			col_i(t, "backlog", d, sizeof(d)),
			col_ms(t, "oldest_pending_age_ms", e, sizeof(e)),
			col_i(t, "running", f, sizeof(f)), rate,
			col_ms(t, "run_ms_p50", g, sizeof(g)),
			col_ms(t, "run_ms_p99", h, sizeof(h)),
			col_i(t, "done", k, sizeof(k)),
			col_i(t, "failed", l, sizeof(l)));
	}
	free(types);

	json_t *lanes = json_object_get(frame, "lanes");
	if (json_array_size(lanes) > 0) {
		bg_buf_puts(o, "\nLANES (the fleet's ready set)\n");
		bg_buf_printf(o, "  %-20s %-16s %8s %8s %13s\n", "agent_type",
			      "lane", "waiting", "oldest", "fleet_running");
	}
	json_array_foreach(lanes, i, w) {
		if (!matches(tp, top_str(w, "agent_type"), top_str(w, "lane")))
			continue;
		bg_buf_printf(o, "  %-20s %-16s %8s %8s %13s\n",
			      top_str(w, "agent_type"),
			      *top_str(w, "lane") ? top_str(w, "lane")
						  : "(default)",
			      col_i(w, "waiting", a, sizeof(a)),
			      col_ms(w, "oldest_age_ms", b, sizeof(b)),
			      col_i(w, "fleet_running", c, sizeof(c)));
	}

	json_t **ch =
		sorted(json_object_get(frame, "children"), cmp_children, &n);
	bg_buf_printf(o, "\nCHILDREN (%zu tasks running)\n", n);
	bg_buf_printf(o, "  %-16s %4s %8s %-8s %-16s %-28s %8s\n", "worker",
		      "slot", "pid", "state", "agent_type", "message",
		      "elapsed");
	size_t shown = 0;
	for (i = 0; i < n; i++) {
		json_t *t = ch[i];
		if (!matches(tp, top_str(t, "agent_type"),
			     top_str(t, "message_id")))
			continue;
		if (shown++ == CHILDREN_SHOWN) {
			bg_buf_printf(o, "  ... and more\n");
			break;
		}
		bg_buf_printf(o, "  %-16s %4s %8s %-8s %-16s %-28s %8s\n",
			      top_str(t, "worker_id"),
			      col_i(t, "slot", a, sizeof(a)),
			      col_i(t, "pid", b, sizeof(b)),
			      top_str(t, "state"), top_str(t, "agent_type"),
			      top_str(t, "message_id"),
			      col_ms(t, "elapsed_ms", c, sizeof(c)));
	}
	free(ch);

	bg_buf_puts(o, "\nRECENT FAILURES\n");
	shown = 0;
	json_array_foreach(json_object_get(frame, "failures"), i, w) {
		if (!matches(tp, top_str(w, "agent_type"),
			     top_str(w, "message_id")) ||
		    shown++ == FAILURES_SHOWN)
			continue;
		char when[40];
		bg_buf_printf(o, "  %s %-16s %-28s %-10s %.60s\n",
			      cli_fmt_ms((json_int_t)top_num(w, "ts_ms"), when,
					 sizeof(when)),
			      top_str(w, "agent_type"),
			      top_str(w, "message_id"), top_str(w, "status"),
			      top_str(w, "error"));
	}
	if (shown == 0)
		bg_buf_puts(o, "  (none)\n");
}

/* ---- the terminal ---------------------------------------------------------- */

static struct termios g_saved;
static bool g_raw;

void top_restore_terminal(void)
{
	if (g_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
	g_raw = false;
	fputs("\033[?25h", stdout); /* the cursor back */
	fflush(stdout);
}

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

void top_raw_terminal(void)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0) {
		struct termios t = g_saved;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		g_raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
	}
	fputs("\033[?25l", stdout); /* no cursor */
}

/* The frame from the top left, each line cut at the terminal's width and
 * cleared to its end, lines past its height left out, then the rest of
 * the screen cleared. */
void top_draw(struct top *tp, json_t *frame)
{
	struct bg_buf o = { 0 };
	bg_buf_puts(&o, "\033[H");
	struct bg_buf body = { 0 };
	render(tp, frame, &body, true);
	struct winsize ws = { 0 };
	size_t cols = 0, rows = 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		cols = ws.ws_col;
		rows = ws.ws_row;
	}
	size_t row = 0;
	for (const char *l = body.p; l && l < body.p + body.len;) {
		const char *nl =
			memchr(l, '\n', (size_t)(body.p + body.len - l));
		size_t len = nl ? (size_t)(nl - l)
				: (size_t)(body.p + body.len - l);
		if (rows && ++row >= rows)
			break;
		bg_buf_append(&o, l, cols && len > cols ? cols : len);
		bg_buf_puts(&o, "\033[K\n");
		l += len + 1;
	}
	bg_buf_puts(&o, "\033[J");
	fwrite(o.p, 1, o.len, stdout);
	fflush(stdout);
	bg_buf_free(&o);
	bg_buf_free(&body);
}

/* Read the filter typed after '/', up to Enter (Escape clears it). */
static void read_filter(struct top *tp)
{
	size_t n = 0;
	char buf[sizeof(tp->filter)];
	printf("\033[999;1H\033[Kfilter: ");
	fflush(stdout);
	while (!g_stop) {
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		if (poll(&p, 1, 500) != 1)
			continue;
		char ch;
		if (read(STDIN_FILENO, &ch, 1) != 1)
			break;
		if (ch == '\n' || ch == '\r')
			break;
		if (ch == 27) {
			n = 0;
			break;
		}
		if ((ch == 127 || ch == 8) && n > 0) {
			n--;
			printf("\b \b");
		} else if (ch >= 32 && n + 1 < sizeof(buf)) {
			buf[n++] = ch;
			putchar(ch);
		}
		fflush(stdout);
	}
	buf[n] = '\0';
	memcpy(tp->filter, buf, n + 1);
}

/* Wait up to ms for a key; false when the view should end. */
bool top_keys(struct top *tp, int ms)
{
	int64_t until = cli_mono_ms() + ms;
	while (!g_stop) {
		int left = (int)(until - cli_mono_ms());
		if (left <= 0)
			return true;
		struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
		if (!g_raw || poll(&p, 1, left) != 1) {
			if (!g_raw)
				cli_sleep_ms(left > 100 ? 100 : left);
			continue;
		}
		char ch;
		if (read(STDIN_FILENO, &ch, 1) != 1)
			return true;
		if (ch == 'q' || ch == 'Q')
			return false;
		if (ch == 's' || ch == 'S') {
			tp->sort = (tp->sort + 1) % TOP_N_SORTS;
			return true;
		}
		if (ch == '/') {
			read_filter(tp);
			return true;
		}
	}
	return false;
}

void top_emit(struct top *tp, json_t *frame)
{
	if (tp->cli->json) {
		cli_print_json(json_incref(frame)); /* print_json releases it */
		return;
	}
	struct bg_buf o = { 0 };
	render(tp, frame, &o, false);
	fwrite(o.p, 1, o.len, stdout);
	bg_buf_free(&o);
}
