/* supervisor/promtext.h - a writer of the Prometheus text exposition format
 * 0.0.4 (HELP and TYPE lines, samples with escaped labels, histograms with
 * the fixed bygate buckets). Pure: no daemon state, no I/O, no logging, so
 * tests/unit/test_promtext.c checks it without a running bygated. */
#ifndef BG_SUPERVISOR_PROMTEXT_H
#define BG_SUPERVISOR_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* One label pair; name is a valid label name chosen by the caller, value is
 * any bytes (escaped, invalid UTF-8 replaced by U+FFFD). */
struct bg_prom_label {
	const char *name;
	const char *value;
};

/* Upper bounds in seconds, 0.005 .. 300; +Inf is implicit. */
#define BG_PROM_NBUCKETS 15
extern const double bg_prom_buckets[BG_PROM_NBUCKETS];

/* A histogram: per-bucket (not cumulative) counts, the +Inf overflow is
 * count minus the bucket sum. A zeroed struct is empty. */
struct bg_prom_hist {
	uint64_t bucket[BG_PROM_NBUCKETS];
	uint64_t count;
	double sum;
};

void bg_prom_hist_observe(struct bg_prom_hist *h, double seconds);

/* "# HELP name help" (help escaped) and "# TYPE name type"; type is
 * counter, gauge or histogram. 0 or -ENOMEM, as every writer here. */
int bg_prom_family(struct bg_buf *out, const char *name, const char *type,
		   const char *help);

/* "name{l1="v1",...} value": integral values below 2^53 print as
 * integers, NaN and infinities as NaN, +Inf, -Inf. */
int bg_prom_sample(struct bg_buf *out, const char *name,
		   const struct bg_prom_label *labels, size_t n_labels,
		   double value);

/* name_bucket{labels...,le="..."} (cumulative, ending with +Inf),
 * name_sum and name_count of h. At most 7 labels besides le. */
int bg_prom_hist_write(struct bg_buf *out, const char *name,
		       const struct bg_prom_label *labels, size_t n_labels,
		       const struct bg_prom_hist *h);

/* Append v escaped as a label value (backslash, double quote, newline). */
int bg_prom_escape_label(struct bg_buf *out, const char *v);

#endif
