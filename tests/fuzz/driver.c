/* tests/fuzz/driver.c - a main() for the libFuzzer targets of tests/fuzz/
 * where libFuzzer is not installed (gcc): it replays inputs through the
 * target's LLVMFuzzerTestOneInput, so `make tests` builds every target as
 * build/tests/fuzz_<name> and tests/run.py runs it in the unit suite.
 *
 *   build/tests/fuzz_<name> [-libfuzzer_flag=...] [FILE|DIR]...
 *
 * Without FILE or DIR it reads the seed corpus tests/fuzz/corpus/fuzz_<name>/
 * (relative to the current directory: tests/run.py runs the binaries from
 * the repository root). Each input is run as is, then every prefix of it
 * (the reads past a shortened end), then BG_FUZZ_MUTATIONS (environment,
 * default 5000) mutations of it. The mutations are drawn from a generator
 * seeded with the input's bytes, so `fuzz_<name> FILE` repeats a failure
 * exactly. The target reports a bug by crashing (abort, a sanitizer); the
 * driver's last line then names the input and the variant. Flags starting
 * with '-' are libFuzzer's and ignored, so a libFuzzer command line runs.
 * Ends with "N passed, M failed" (N inputs read, M unreadable). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif
#ifdef HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEFAULT_MUTATIONS 5000
#define MAX_GROWTH 256 /* bytes a mutation may add */

/* What runs now, for the crash report (read by a signal handler). */
static const char *cur_path = "";
static const char *cur_kind = "";
static size_t cur_index;

static void put(const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(2, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Async-signal-safe: only write(2). Once (a sanitizer's death callback
 * may be followed by its abort()). */
static void report(void)
{
	static volatile sig_atomic_t done;
	char num[24], *p = num + sizeof num - 1;
	size_t v = cur_index;
	if (done)
		return;
	done = 1;
	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	put("fuzz driver: crashed on ");
	put(cur_path);
	put(" (");
	put(cur_kind);
	put(" ");
	put(p);
	put(")\n");
}

static void on_crash(int sig)
{
	report();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_crashes(void)
{
	static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		signal(sigs[i], on_crash);
#ifdef HAVE_SANITIZER
	/* a sanitizer that finds a bug exits without a signal */
	__sanitizer_set_death_callback(report);
#endif
}

/* The target sees an exact-size heap copy, so a read past the end is a
 * sanitizer report even in a target that does not copy. */
static void run(const uint8_t *data, size_t size, const char *kind,
		size_t index)
{
	uint8_t *copy = malloc(size ? size : 1);
	if (copy == NULL) {
		put("fuzz driver: out of memory\n");
		exit(1);
	}
	memcpy(copy, data, size);
	cur_kind = kind;
	cur_index = index;
	LLVMFuzzerTestOneInput(copy, size);
	free(copy);
}

/* ---- mutations ---- */

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t below(size_t n)
{
	return n ? (size_t)(next() % n) : 0;
}

/* A position in [0, n] (the min() tells the compiler so). */
static size_t position(size_t n)
{
	size_t v = below(n + 1);
	return v < n ? v : n;
}

static uint64_t seed_of(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h ? h : 1;
}

/* Bytes and tokens that matter to a JSON scanner. */
static const uint8_t bytes[] = { '"',  '\\', '{',  '}',	 '[',  ']',  ',',  ':',
				 '0',  '-',  'e',  '.',	 'u',  'n',  't',  'f',
				 ' ',  '\n', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc0,
				 0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xff };
static const char *const tokens[] = {
	"\\u",
	"\\u0000",
	"\\ud800",
	"\\udc00",
	"\\ud83d\\ude00",
	"\\\"",
	"null",
	"true",
	"false",
	"-0",
	"1e999",
	"0.5e-3",
	"\"\"",
	"{}",
	"[]",
	"{\"a\":",
	"\xf0\x9f\x98\x80",
	"\xed\xa0\x80",
	"\"action_type\"",
	"\"header\"",
	"\"body\"",
	"\"content\"",
};

/* Replace del bytes at `at` with ins[0..k) (ins outside buf); nothing
 * when it does not fit in cap. */
static void splice(uint8_t *buf, size_t *len, size_t cap, size_t at, size_t del,
		   const void *ins, size_t k)
{
	size_t n = *len;
	if (k > cap || at > n || del > n - at || n - del > cap - k)
		return;
	memmove(buf + at + k, buf + at + del, n - at - del);
	memcpy(buf + at, ins, k);
	*len = n - del + k;
}

/* One random edit of buf[0..*len) (capacity cap). */
static void mutate_once(uint8_t *buf, size_t *len, size_t cap)
{
	size_t n = *len, at = position(n);
	switch (below(5)) {
	case 0: /* flip a bit */
		if (n)
			buf[below(n)] ^= (uint8_t)(1u << below(8));
		break;
	case 1: /* overwrite a byte */
		if (n)
			buf[below(n)] = bytes[below(sizeof bytes)];
		break;
	case 2: { /* insert a token */
		const char *t = tokens[below(sizeof tokens / sizeof *tokens)];
		splice(buf, len, cap, at, 0, t, strlen(t));
		break;
	}
	case 3: { /* delete a span */
		size_t k = 1 + below(8);
		splice(buf, len, cap, at, k < n - at ? k : n - at, "", 0);
		break;
	}
	default: { /* repeat a span elsewhere */
		uint8_t span[16];
		size_t from = position(n), k = below(sizeof span + 1);
		if (k > n - from)
			k = n - from;
		memcpy(span, buf + from, k);
		splice(buf, len, cap, at, 0, span, k);
		break;
	}
	}
}

static size_t mutations(void)
{
	const char *env = getenv("BG_FUZZ_MUTATIONS");
	char *end;
	unsigned long v = env ? strtoul(env, &end, 10) : DEFAULT_MUTATIONS;
	return env && (*end || end == env) ? DEFAULT_MUTATIONS : (size_t)v;
}

/* The input, its prefixes and its mutations. */
static int run_input(const char *path, const uint8_t *data, size_t size)
{
	size_t cap = size + MAX_GROWTH, count = mutations();
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	cur_path = path;
	run(data, size, "as is", 0);
	for (size_t n = 0; n < size; n++)
		run(data, n, "prefix of length", n);
	rng = seed_of(data, size);
	for (size_t i = 0; i < count; i++) {
		size_t len = size;
		memcpy(buf, data, size);
		for (size_t k = 1 + below(4); k > 0; k--)
			mutate_once(buf, &len, cap);
		run(buf, len, "mutation", i);
	}
	free(buf);
	printf("ok   %s (%zu bytes, %zu prefixes, %zu mutations)\n", path, size,
	       size, count);
	fflush(stdout);
	return 0;
}

/* ---- inputs ---- */

static int read_file(const char *path, uint8_t **out, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	size_t n = 0, cap = 0;
	if (f == NULL)
		return -errno;
	for (;;) {
		if (n == cap) {
			uint8_t *q = realloc(p, cap = cap ? cap * 2 : 4096);
			if (q == NULL) {
				free(p);
				fclose(f);
				return -ENOMEM;
			}
			p = q;
		}
		size_t r = fread(p + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	*size = n;
	return 0;
}

struct tally {
	size_t passed, failed;
};

static void run_file(const char *path, struct tally *t)
{
	uint8_t *data = NULL;
	size_t size = 0;
	int rc = read_file(path, &data, &size);
	if (rc == 0) {
		rc = run_input(path, data, size);
		free(data);
	}
	if (rc) {
		printf("FAIL %s: %s\n", path, strerror(-rc));
		t->failed++;
	} else {
		t->passed++;
	}
}

static int skip_dots(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/* The regular files of dir, in name order. */
static void run_dir(const char *dir, struct tally *t)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_dots, alphasort);
	if (n == -1) {
		printf("FAIL %s: %s\n", dir, strerror(errno));
		t->failed++;
		return;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			run_file(path, t);
		free(names[i]);
	}
	free(names);
}

static void run_path(const char *path, struct tally *t)
{
	struct stat sb;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		run_dir(path, t);
	else
		run_file(path, t);
}

int main(int argc, char **argv)
{
	struct tally t = { 0, 0 };
	bool any = false;
	catch_crashes();
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue; /* a libFuzzer flag */
		run_path(argv[i], &t);
		any = true;
	}
	if (!any) {
		const char *slash = strrchr(argv[0], '/');
		char dir[4096];
		snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s",
			 slash ? slash + 1 : argv[0]);
		run_dir(dir, &t);
	}
	if (t.passed + t.failed == 0) {
		printf("FAIL no inputs\n");
		t.failed = 1;
	}
	printf("%zu passed, %zu failed\n", t.passed, t.failed);
	return t.failed ? 1 : 0;
}
