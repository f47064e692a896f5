/* tests/fuzz/fuzz_command.c - libFuzzer target for the control-command
 * scanner and the JSON skipper (untrusted Redis input).
 *
 * `make tests` builds it with gcc and the replay driver tests/fuzz/driver.c
 * as build/tests/fuzz_command, which the unit suite runs over the seed
 * corpus tests/fuzz/corpus/fuzz_command/ (each seed, its prefixes and
 * deterministic mutations). To fuzz for real, with clang and libFuzzer,
 * from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. \
 *     -fsanitize=fuzzer,address,undefined \
 *     tests/fuzz/fuzz_command.c wire/command.c wire/json.c common/buf.c \
 *     -ljansson -o fuzz_command
 *   mkdir -p /tmp/fuzz_command
 *   ./fuzz_command -max_len=4096 -max_total_time=60 \
 *     /tmp/fuzz_command tests/fuzz/corpus/fuzz_command
 *
 * (libFuzzer writes what it finds into the first directory.) An input that
 * crashed it belongs in tests/fuzz/corpus/fuzz_command/ once fixed: every
 * `make test` then runs it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/command.h"
#include "wire/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so any read past the end is caught. */
	char *p = malloc(size ? size : 1);
	struct bg_cmd cmd;
	size_t end;

	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	if (bg_json_skip(p, size, &end) == 0 && end > size)
		abort();
	if (bg_cmd_scan(p, size, &cmd) == 0) {
		if (!bg_json_valid(p, size))
			abort(); /* the scanner accepted invalid JSON */
		bg_cmd_validate_task(&cmd);
	}
	bg_cmd_free(&cmd);
	free(p);
	return 0;
}
