/* wire/ids.c - random by-framework ids (getrandom) and md5 span ids
 * (libcrypto EVP). */
#include "wire/ids.h"

#include <errno.h>
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

/* Fill b[0..n) with random bytes; getrandom() may return short reads for
 * large n and EINTR before the pool is ready. */
static int random_bytes(unsigned char *b, size_t n)
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
