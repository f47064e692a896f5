/* supervisor/promtext.c - the Prometheus text format 0.0.4 writer of
 * promtext.h: escaping, number formatting, histograms. Pure: tested by
 * tests/unit/test_promtext.c, which includes this file directly. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/promtext.h"

const double bg_prom_buckets[BG_PROM_NBUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5,   5,    10,    30,	  60,  120,  300,
};

void bg_prom_hist_observe(struct bg_prom_hist *h, double seconds)
{
	if (isnan(seconds))
		return;
	if (seconds < 0)
		seconds = 0;
	for (int i = 0; i < BG_PROM_NBUCKETS; i++)
		if (seconds <= bg_prom_buckets[i]) {
			h->bucket[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
	if (n == 0 || c > 0xf4)
		return 0;
	uint32_t cp = c & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Escape backslash and newline, and the double quote when quote is set;
 * invalid UTF-8 becomes U+FFFD. */
static int escape(struct bg_buf *out, const char *v, bool quote)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	while (*s) {
		size_t n = utf8_seq(s);
		int rc;
		if (n == 0) {
			rc = bg_buf_puts(out, "\xef\xbf\xbd");
			n = 1;
		} else if (*s == '\\') {
			rc = bg_buf_puts(out, "\\\\");
		} else if (*s == '\n') {
			rc = bg_buf_puts(out, "\\n");
		} else if (*s == '"' && quote) {
			rc = bg_buf_puts(out, "\\\"");
		} else {
			rc = bg_buf_append(out, s, n);
		}
		if (rc)
			return rc;
		s += n;
	}
	return 0;
}

int bg_prom_escape_label(struct bg_buf *out, const char *v)
{
	return escape(out, v, true);
}

int bg_prom_family(struct bg_buf *out, const char *name, const char *type,
		   const char *help)
{
	if (bg_buf_printf(out, "# HELP %s ", name) || escape(out, help, false))
		return -ENOMEM;
	return bg_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static int put_value(struct bg_buf *out, double v)
{
	if (isnan(v))
		return bg_buf_puts(out, "NaN");
	if (isinf(v))
		return bg_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		return bg_buf_printf(out, "%.0f", v);
	char s[32]; /* the shorter of 15 and 17 digits that reads back as v */
	snprintf(s, sizeof(s), "%.15g", v);
	if (strtod(s, NULL) != v)
		snprintf(s, sizeof(s), "%.17g", v);
	return bg_buf_puts(out, s);
}

static int put_labels(struct bg_buf *out, const struct bg_prom_label *l,
		      size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (bg_buf_printf(out, "%s%s=\"", i ? "," : "{", l[i].name) ||
		    escape(out, l[i].value, true) || bg_buf_puts(out, "\""))
			return -ENOMEM;
	return bg_buf_puts(out, "}");
}

int bg_prom_sample(struct bg_buf *out, const char *name,
		   const struct bg_prom_label *labels, size_t n_labels,
		   double value)
{
	if (bg_buf_puts(out, name) || put_labels(out, labels, n_labels) ||
	    bg_buf_puts(out, " ") || put_value(out, value))
		return -ENOMEM;
	return bg_buf_puts(out, "\n");
}

int bg_prom_hist_write(struct bg_buf *out, const char *name,
		       const struct bg_prom_label *labels, size_t n_labels,
		       const struct bg_prom_hist *h)
{
	struct bg_prom_label l[8];
	char metric[128], le[32];
	if (n_labels > 7)
		return -EINVAL;
	if (n_labels)
		memcpy(l, labels, n_labels * sizeof(*l));
	l[n_labels].name = "le";
	l[n_labels].value = le;
	snprintf(metric, sizeof(metric), "%s_bucket", name);
	uint64_t cum = 0;
	for (int i = 0; i <= BG_PROM_NBUCKETS; i++) {
		if (i < BG_PROM_NBUCKETS) {
			cum += h->bucket[i];
			snprintf(le, sizeof(le), "%g", bg_prom_buckets[i]);
		} else {
			cum = h->count;
			snprintf(le, sizeof(le), "+Inf");
		}
		if (bg_prom_sample(out, metric, l, n_labels + 1, (double)cum))
			return -ENOMEM;
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	if (bg_prom_sample(out, metric, labels, n_labels, h->sum))
		return -ENOMEM;
	snprintf(metric, sizeof(metric), "%s_count", name);
	return bg_prom_sample(out, metric, labels, n_labels, (double)h->count);
}
