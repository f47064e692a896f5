/* workspace/id.c - which ids may become a workspace path component, and how
 * untrusted names are quoted in error texts. */
#include "workspace/workspace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "workspace/internal.h"

#define QUOTE_MAX 96 /* bytes of a quoted name in an error text */

/* Length of the valid UTF-8 sequence at s (n bytes left) and its code point
 * in *cp; 0 if invalid (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, min = 0x80, *cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, min = 0x800, *cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, min = 0x10000, *cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return len;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	uint32_t cp;
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_seq(s + i, n - i, &cp)) == 0)
			return false;
	return true;
}

/* Fills why with the first forbidden byte or sequence of s; "" if none. */
static void bad_content(const unsigned char *s, size_t n, char *why,
			size_t whylen)
{
	uint32_t cp;
	size_t k;

	why[0] = '\0';
	for (size_t i = 0; i < n; i += k) {
		k = 1;
		if (s[i] == '/') {
			snprintf(why, whylen, "contains '/'");
		} else if (s[i] == 0) {
			snprintf(why, whylen, "contains a NUL byte");
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(why, whylen,
				 "contains control character 0x%02x", s[i]);
		} else if ((k = utf8_seq(s + i, n - i, &cp)) == 0) {
			snprintf(why, whylen, "is not valid UTF-8 (byte %zu)",
				 i);
		} else if (cp >= 0x80 && cp <= 0x9f) {
			snprintf(why, whylen,
				 "contains control character U+%04X",
				 (unsigned)cp);
		}
		if (why[0])
			return;
	}
}

int bg_ws_check_name(struct bg_str name, const char *what, size_t max,
		     char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)name.p;
	char why[96], q[QUOTE_MAX];

	if (name.len == 0)
		snprintf(why, sizeof(why), "is empty");
	else if (name.len > max)
		snprintf(why, sizeof(why), "is longer than %zu bytes (%zu)",
			 max, name.len);
	else if ((name.len == 1 && s[0] == '.') ||
		 (name.len == 2 && s[0] == '.' && s[1] == '.'))
		snprintf(why, sizeof(why),
			 "names the current or parent directory");
	else
		bad_content(s, name.len, why, sizeof(why));
	if (why[0] == '\0')
		return 0;
	bg_ws_quote(q, sizeof(q), name.p, name.len);
	bg_ws_errf(err, errlen, "%s %s is not allowed as a directory name: %s",
		   what, q, why);
	return -EINVAL;
}

int bg_ws_check_id(struct bg_str id, const char *what, bool allow_empty,
		   char *err, size_t errlen)
{
	if (id.len == 0 && allow_empty)
		return 0;
	return bg_ws_check_name(id, what, BG_WS_ID_MAX, err, errlen);
}

/* Appends one unit (an escape or a whole UTF-8 sequence) if it fits. */
static bool quote_unit(char *out, size_t room, size_t *o, const char *u,
		       size_t n)
{
	if (*o + n > room)
		return false;
	memcpy(out + *o, u, n);
	*o += n;
	return true;
}

void bg_ws_quote(char *out, size_t outlen, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	bool raw8 = utf8_valid(u, len);
	size_t o = 0, room, k;
	char esc[8];
	uint32_t cp;

	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	room = outlen - 6; /* keeps space for `..."` and the NUL */
	out[o++] = '"';
	for (size_t i = 0; i < len; i += k) {
		const char *unit = esc;
		size_t n;

		k = 1;
		if (u[i] == '"' || u[i] == '\\') {
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", u[i]);
		} else if (u[i] < 0x20 || u[i] == 0x7f ||
			   (u[i] >= 0x80 && !raw8)) {
			n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", u[i]);
		} else {
			k = u[i] < 0x80 ? 1 : utf8_seq(u + i, len - i, &cp);
			unit = s + i, n = k;
		}
		if (!quote_unit(out, room, &o, unit, n)) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

void bg_ws_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
