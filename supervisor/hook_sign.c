/* supervisor/hook_sign.c - webhook signatures (hook_sign.h): HMAC-SHA256
 * through OpenSSL 3's EVP_MAC, compared with CRYPTO_memcmp. */
#include "supervisor/hook_sign.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAC_LEN (BG_HOOK_SIGN_HEX / 2)
#define TS_DIGITS_MAX 15 /* far beyond any date, far below INT64_MAX */

/* HMAC-SHA256(secret, timestamp "." body) into mac. */
static int hmac(struct bg_str secret, struct bg_str ts, struct bg_str body,
		unsigned char mac[MAC_LEN])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						 (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	size_t len = 0;
	bool ok = c &&
		  EVP_MAC_init(c, (const unsigned char *)secret.p, secret.len,
			       params) == 1 &&
		  EVP_MAC_update(c, (const unsigned char *)ts.p, ts.len) == 1 &&
		  EVP_MAC_update(c, (const unsigned char *)".", 1) == 1 &&
		  EVP_MAC_update(c, (const unsigned char *)body.p, body.len) ==
			  1 &&
		  EVP_MAC_final(c, mac, &len, MAC_LEN) == 1 && len == MAC_LEN;
	EVP_MAC_CTX_free(c);
	EVP_MAC_free(m);
	return ok ? 0 : -EIO;
}

int bg_hook_sign_compute(struct bg_str secret, struct bg_str timestamp,
			 struct bg_str body, char hex[BG_HOOK_SIGN_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char mac[MAC_LEN];
	if (secret.len == 0)
		return -EINVAL;
	int rc = hmac(secret, timestamp, body, mac);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < MAC_LEN; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[BG_HOOK_SIGN_HEX] = '\0';
	return 0;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* s without the spaces and tabs around it. */
static struct bg_str trim(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && blank(*s)) {
		s++;
		n--;
	}
	while (n > 0 && blank(s[n - 1]))
		n--;
	return (struct bg_str){ s, n };
}

/* 1..TS_DIGITS_MAX decimal digits into *out. */
static bool parse_ts(struct bg_str s, int64_t *out)
{
	int64_t v = 0;
	if (s.len == 0 || s.len > TS_DIGITS_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (s.p[i] - '0');
	}
	*out = v;
	return true;
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "sha256=<64 hex>" or "<64 hex>" (either case) into mac. */
static bool parse_sig(struct bg_str s, unsigned char mac[MAC_LEN])
{
	static const char scheme[] = "sha256=";
	if (s.len > sizeof(scheme) - 1 &&
	    strncasecmp(s.p, scheme, sizeof(scheme) - 1) == 0) {
		s.p += sizeof(scheme) - 1;
		s.len -= sizeof(scheme) - 1;
	}
	if (s.len != BG_HOOK_SIGN_HEX)
		return false;
	for (size_t i = 0; i < MAC_LEN; i++) {
		int hi = nibble(s.p[2 * i]), lo = nibble(s.p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		mac[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

enum bg_hook_sign_verdict bg_hook_sign_check(struct bg_str secret,
					     const struct bg_hook_signed *req,
					     int64_t now_s, int tolerance_s)
{
	unsigned char want[MAC_LEN], got[MAC_LEN];
	int64_t ts;
	if (req->timestamp == NULL)
		return BG_HOOK_SIGN_NO_TIMESTAMP;
	struct bg_str tss = trim(req->timestamp);
	if (!parse_ts(tss, &ts))
		return BG_HOOK_SIGN_BAD_TIMESTAMP;
	if (ts < now_s - tolerance_s || ts > now_s + tolerance_s)
		return BG_HOOK_SIGN_STALE;
	if (req->signature == NULL)
		return BG_HOOK_SIGN_NO_SIGNATURE;
	if (!parse_sig(trim(req->signature), got))
		return BG_HOOK_SIGN_BAD_SIGNATURE;
	if (secret.len == 0)
		return BG_HOOK_SIGN_NO_SECRET;
	if (hmac(secret, tss, req->body, want) != 0)
		return BG_HOOK_SIGN_FAILED;
	if (CRYPTO_memcmp(want, got, MAC_LEN) != 0)
		return BG_HOOK_SIGN_MISMATCH;
	return BG_HOOK_SIGN_OK;
}

const char *bg_hook_sign_reason(enum bg_hook_sign_verdict v)
{
	switch (v) {
	case BG_HOOK_SIGN_OK:
		return "signature valid";
	case BG_HOOK_SIGN_NO_TIMESTAMP:
		return "timestamp header missing";
	case BG_HOOK_SIGN_BAD_TIMESTAMP:
		return "timestamp header is not Unix seconds";
	case BG_HOOK_SIGN_STALE:
		return "timestamp outside the tolerance window";
	case BG_HOOK_SIGN_NO_SIGNATURE:
		return "signature header missing";
	case BG_HOOK_SIGN_BAD_SIGNATURE:
		return "signature header is not sha256=<64 hex digits>";
	case BG_HOOK_SIGN_MISMATCH:
		return "signature does not match";
	case BG_HOOK_SIGN_NO_SECRET:
		return "webhook has no secret configured";
	case BG_HOOK_SIGN_FAILED:
		return "signature could not be computed";
	}
	return "unknown verdict";
}
