/* tests/fuzz/fuzz_config.c - libFuzzer target for the configuration loader
 * (conf/: bg_config_load, the key table, validation) and the printer of
 * the effective configuration (bg_config_dump, `bygated -T`).
 *
 * bg_config_load reads a path, so each input is written to a file in a
 * private temporary directory (removed at exit; in /dev/shm unless
 * $TMPDIR is set). Inputs holding "@include"
 * are skipped: an include names any file (/dev/stdin would block). Checked
 * besides memory safety: the dump of an accepted configuration loads
 * again, and its own dump is the same text (what "-T re-loads to the same
 * configuration" promises, config.h), apart from the first line (the
 * file's path).
 *
 * `make tests` builds it with the replay driver as build/tests/fuzz_config
 * (seeds: tests/fuzz/corpus/fuzz_config/); `make fuzz` with libFuzzer, or
 * by hand from the repository root:
 *
 *   clang -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -Iinclude \
 *     -fsanitize=fuzzer,address,undefined tests/fuzz/fuzz_config.c \
 *     conf/[a-z]*.c wire/[a-z]*.c common/[a-z]*.c \
 *     -lconfig -ljansson -lcrypto -lm \
 *     -o fuzz_config
 *   mkdir -p /tmp/fuzz_config
 *   ./fuzz_config -max_len=4096 -max_total_time=60 \
 *     /tmp/fuzz_config tests/fuzz/corpus/fuzz_config
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/config.h"

#include "tests/fuzz/check.h"

/* libconfig 1.5 leaks a string buffer on some syntax errors (its
 * scanner's strbuf, fixed in later versions): not ours to find. Read by
 * LeakSanitizer (clang's and gcc's) at start. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

static char dir[64], input_path[96], dump_path[96];

static void remove_dir(void)
{
	unlink(input_path);
	unlink(dump_path);
	rmdir(dir);
}

/* In $TMPDIR, else in memory (/dev/shm) when there is one: a file
 * rewritten on disk thousands of times a second costs ten times more. */
static void make_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) >= 32)
		tmp = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm"
							   : "/tmp";
	snprintf(dir, sizeof dir, "%s/fuzz_config.XXXXXX", tmp);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(input_path, sizeof input_path, "%s/bygate.conf", dir);
	snprintf(dump_path, sizeof dump_path, "%s/dump.conf", dir);
	atexit(remove_dir);
}

/* A new file each time (ext4 flushes a truncated one on close). */
static void write_file(const char *path, const void *p, size_t n)
{
	unlink(path);
	FILE *f = fopen(path, "wb");
	CHECK(f != NULL);
	CHECK(fwrite(p, 1, n, f) == n || n == 0);
	CHECK(fclose(f) == 0);
}

/* The dump of cfg (malloc'd) and the offset past its first line. */
static char *dump(const struct bg_config *cfg, size_t *len, size_t *body)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	CHECK(f != NULL);
	bg_config_dump(cfg, f);
	CHECK(fclose(f) == 0);
	char *nl = memchr(text, '\n', *len);
	*body = nl ? (size_t)(nl - text) + 1 : 0;
	return text;
}

/* "@include" in any case. */
static bool has_include(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i++)
		if (p[i] == '@' &&
		    strncasecmp((const char *)p + i, "@include", 8) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bg_config cfg, again;
	char err[512];
	size_t len1, body1, len2, body2;

	if (has_include(data, size))
		return 0;
	if (dir[0] == '\0')
		make_dir();
	write_file(input_path, data, size);
	if (bg_config_load(input_path, &cfg, err, sizeof err) != 0)
		return 0;
	char *text1 = dump(&cfg, &len1, &body1);
	bg_config_free(&cfg);
	write_file(dump_path, text1, len1);
	if (bg_config_load(dump_path, &again, err, sizeof err) != 0) {
		fprintf(stderr, "the dump does not load: %s\n%s\n", err, text1);
		abort();
	}
	char *text2 = dump(&again, &len2, &body2);
	bg_config_free(&again);
	if (len1 - body1 != len2 - body2 ||
	    memcmp(text1 + body1, text2 + body2, len1 - body1) != 0) {
		fprintf(stderr,
			"the dump changes when re-loaded:\n%s\n---\n%s\n",
			text1, text2);
		abort();
	}
	free(text1);
	free(text2);
	return 0;
}
