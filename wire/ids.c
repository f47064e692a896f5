/* wire/ids.c - random by-framework ids (getrandom) and md5 span ids
 * (libcrypto EVP). */
#include "wire/ids.h"

#include <errno.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static void hex_encode(char *out, const unsigned char *b, size_t n, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Fill b[0..n) from getrandom(), which may return short reads for large
 * n and EINTR before the pool is ready. */
static int getrandom_all(unsigned char *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(b + got, n - got, 0);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		got += (size_t)r;
	}
	return 0;
}

/* Random bytes are taken from a per-thread pool filled by one getrandom()
 * of POOL_BYTES (a busy bygated makes two ids per task: one system call
 * per ~50 tasks instead of two per task). Each byte is handed out once
 * and wiped as it is taken, so ids stay as unpredictable as getrandom's
 * bytes. The pool is per thread (a client is used by one thread at a
 * time, include/bygate/client.h), so no lock; a fork() child would share
 * the parent's next bytes, so the child handler of pthread_atfork empties
 * the pool of the thread that forked (the only one in the child). A
 * process made by a raw clone() system call (supervisor/spawn.c) runs no
 * atfork handler: it must exec before it makes an id (spawn.c's child
 * does). */
#define POOL_BYTES 1024
static __thread struct {
	unsigned char b[POOL_BYTES];
	size_t left; /* the unused bytes are b[POOL_BYTES - left ..) */
} pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static bool pool_ok; /* set once, under pool_once */

static void pool_forget(void)
{
	explicit_bzero(pool.b, sizeof(pool.b));
	pool.left = 0;
}

static void pool_register(void)
{
	/* no handler (ENOMEM): no pool, a getrandom() per id as before */
	pool_ok = pthread_atfork(NULL, NULL, pool_forget) == 0;
}

static int random_bytes(unsigned char *b, size_t n)
{
	pthread_once(&pool_once, pool_register);
	if (!pool_ok || n > POOL_BYTES)
		return getrandom_all(b, n);
	if (pool.left < n) {
		int rc = getrandom_all(pool.b, sizeof(pool.b));
		if (rc) {
			pool_forget();
			return rc;
		}
		pool.left = sizeof(pool.b);
	}
	unsigned char *take = pool.b + (POOL_BYTES - pool.left);
	memcpy(b, take, n);
	explicit_bzero(take, n);
	pool.left -= n;
	return 0;
}

int bg_id_new(char *out, size_t cap, const char *prefix)
{
	size_t pn = strlen(prefix);
	unsigned char b[4];
	int rc;

	if (cap < pn + 9)
		return -ENOSPC;
	rc = random_bytes(b, sizeof b);
	if (rc)
		return rc;
	memcpy(out, prefix, pn);
	hex_encode(out + pn, b, sizeof b, false);
	return 0;
}

int bg_uuid_hex(char out[33], bool upper)
{
	unsigned char b[16];
	int rc = random_bytes(b, sizeof b);

	if (rc)
		return rc;
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
	hex_encode(out, b, sizeof b, upper);
	return 0;
}

/* md5 over the concatenation a + b. */
static int md5_16hex(char out[17], const void *a, size_t an, const void *b,
		     size_t bn)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdn = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
		 EVP_DigestUpdate(ctx, a, an) && EVP_DigestUpdate(ctx, b, bn) &&
		 EVP_DigestFinal_ex(ctx, md, &mdn) && mdn >= 8;

	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -ENOMEM;
	hex_encode(out, md, 8, false);
	return 0;
}

int bg_span_id16(char out[17], const char *s, size_t n)
{
	return md5_16hex(out, s, n, "", 0);
}

int bg_span_id16_of(char out[17], struct bg_str id, const char *suffix)
{
	return md5_16hex(out, id.p ? id.p : "", id.len, suffix, strlen(suffix));
}

int bg_script_sha1(char out[41], const char *text)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 ||
	    n != 20)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}
