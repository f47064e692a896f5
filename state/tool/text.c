/* state/tool/text.c - bygate-state's display of untrusted bytes: record
 * fields are shown as valid UTF-8 with everything else escaped, and long
 * values cut, so no record can garble a terminal or a JSON document. */
#include "state/tool/tool.h"

#define SHOW_MAX 200 /* bytes of a value shown before "...(N bytes)" */

static size_t utf8_char_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] < 0x80	     ? 1
		     : (p[0] & 0xe0) == 0xc0 ? 2
		     : (p[0] & 0xf0) == 0xe0 ? 3
		     : (p[0] & 0xf8) == 0xf0 ? 4
					     : 0;
	if (len == 0 || len > n || (len == 2 && p[0] < 0xc2))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

void bg_tool_render(struct bg_buf *out, struct bg_str s)
{
	const unsigned char *p = (const unsigned char *)s.p;
	size_t n = s.len > SHOW_MAX ? SHOW_MAX : s.len;
	while (n < s.len && n > 0 && (p[n] & 0xc0) == 0x80)
		n--;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_char_len(p + i, n - i);
		if (len == 1 && p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\')
			bg_buf_append(out, p + i, 1);
		else if (len > 1)
			bg_buf_append(out, p + i, len);
		else if (p[i] == '\\')
			bg_buf_puts(out, "\\\\");
		else
			bg_buf_printf(out, "\\x%02x", p[i]);
		i += len ? len : 1;
	}
	if (n < s.len)
		bg_buf_printf(out, "...(%zu bytes)", s.len);
}

json_t *bg_tool_jtext(struct bg_str s)
{
	struct bg_buf b = { 0 };
	bg_tool_render(&b, s);
	json_t *j = json_stringn(b.p ? b.p : "", b.len);
	bg_buf_free(&b);
	return j;
}
