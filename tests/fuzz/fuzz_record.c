/* tests/fuzz/fuzz_record.c - libFuzzer target for the execution-record
 * reader and the record rewriters (wire/record.c): the record is read from
 * the session registry hash, where any client may have written it.
 *
 * Each input is a stored record. Checked besides memory safety:
 * - bg_record_read accepts only a valid JSON object, and every view it
 *   returns lies inside its store;
 * - a status update is a valid JSON object, and that of a record
 *   bg_record_read accepts reads back with the new status, worker and
 *   cancel request;
 * - the dashboard snapshot of a record is valid JSON;
 * - bg_record_errors_from (the input as metadata and as reply_data) only
 *   returns views into its inputs.
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_record
 * (seeds: tests/fuzz/corpus/fuzz_record/); `make fuzz` with libFuzzer, or
 * by hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_record.c \
 *     wire/record.c wire/json.c wire/send.c wire/ids.c common/buf.c -lcrypto -lm \
 *     -o fuzz_record
 *   mkdir -p /tmp/fuzz_record
 *   ./fuzz_record -max_len=4096 -max_total_time=60 \
 *     /tmp/fuzz_record tests/fuzz/corpus/fuzz_record
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"
#include "wire/record.h"

#include "tests/fuzz/check.h"

static bool inside(struct bg_str v, const char *p, size_t n)
{
	return v.len == 0 ||
	       (v.p >= p && v.len <= n && v.p - p <= (ptrdiff_t)(n - v.len));
}

static void check_views(const struct bg_record *r)
{
	const struct bg_str *v[] = {
		&r->execution_id,      &r->message_id,	  &r->status,
		&r->parent_message_id, &r->worker_id,	  &r->source_agent_type,
		&r->target_agent_type, &r->cancel_reason,
	};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		CHECK(inside(*v[i], r->store.p, r->store.len));
		CHECK(v[i]->len == 0 || v[i]->p != NULL);
	}
}

/* Update the stored record as a finish would: the result is an object, and
 * when bg_record_read accepted the record it accepts the update, which
 * reads back with what was written. */
static void update(struct bg_str rec, bool readable, struct bg_str status,
		   bool cancel, const struct bg_record_errors *errors)
{
	struct bg_buf out = { 0 };
	struct bg_record_update u = {
		.status = status,
		.worker_id = bg_str_c("w-fuzz"),
		.now_ms = 1700000000123,
		.cancel = cancel,
		.cancel_reason = bg_str_c("fuzz \"reason\"\n"),
		.errors = errors,
	};
	if (bg_record_update(&out, rec, &u) == 0) {
		struct bg_str updated = { out.p, out.len };
		struct bg_record r;
		CHECK(bg_json_valid(updated.p, updated.len));
		CHECK(bg_json_type(updated) == '{');
		if (readable) {
			CHECK(bg_record_read(&r, updated) == 0);
			check_views(&r);
			CHECK(r.status.len == status.len &&
			      memcmp(r.status.p, status.p, status.len) == 0);
			CHECK(bg_str_eq(r.worker_id, "w-fuzz"));
			CHECK(!cancel || r.cancel_requested);
			bg_record_free(&r);
		}
	}
	bg_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so any read past the end is caught. */
	char *p = malloc(size ? size : 1);
	struct bg_str in = { p, size };
	struct bg_record r;
	struct bg_buf out = { 0 };
	struct bg_record_errors e;
	bool readable;

	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	if ((readable = bg_record_read(&r, in) == 0)) {
		CHECK(bg_json_valid(p, size));
		CHECK(bg_json_type(in) == '{');
		check_views(&r);
		bg_record_free(&r);
	}
	update(in, readable, bg_str_c("RUNNING"), false, NULL);
	memset(&e, 0, sizeof e);
	if (bg_record_errors_from(&e, in, in) == 0) {
		const struct bg_str *v[] = { &e.error_type, &e.error_message,
					     &e.error_code, &e.failed_stage,
					     &e.retryable };
		for (size_t i = 0; i < sizeof v / sizeof *v; i++)
			CHECK(inside(*v[i], p, size));
		update(in, readable, bg_str_c("FAILED"), true, &e);
	}
	if (bg_record_snapshot(&out, in) == 0)
		CHECK(bg_json_valid(out.p, out.len));
	bg_buf_free(&out);
	free(p);
	return 0;
}
