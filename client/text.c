/* client/text.c - the text of the CLI's tables (workflow results,
 * triggers): cells cut to a size, padded to a width, with control
 * characters shown as '?' so that text read from Redis cannot drive the
 * terminal. Nothing here prints: text goes into a bg_buf. */
#include "client/client_internal.h"

#include <string.h>

int bg_client_text_put(struct bg_buf *out, const char *s, size_t max,
		       size_t width)
{
	size_t n = strlen(s), chars = 0;
	bool cut = n > max;
	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	int rc = bg_buf_reserve(out, n + width + 4);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char put = c < 0x20 || c == 0x7f ? '?' : (char)c;
		chars += (c & 0xC0) != 0x80;
		rc = bg_buf_append(out, &put, 1);
	}
	if (rc == 0 && cut) {
		rc = bg_buf_puts(out, "...");
		chars += 3;
	}
	for (; rc == 0 && chars < width; chars++)
		rc = bg_buf_append(out, " ", 1);
	return rc;
}

size_t bg_client_text_width(const char *s, size_t max)
{
	size_t n = strlen(s), chars = 0;
	if (n > max)
		return max + 3;
	for (size_t i = 0; i < n; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	return chars;
}

int bg_client_text_cell(struct bg_buf *out, const char *s, size_t max,
			size_t width)
{
	int rc = bg_client_text_put(out, s, max, width);
	return rc ? rc : bg_buf_puts(out, "  ");
}

int bg_client_text_end_row(struct bg_buf *out)
{
	while (out->len > 0 && out->p[out->len - 1] == ' ')
		out->len--;
	return bg_buf_puts(out, "\n");
}
