/* wire/idem.c - see idem.h. */
#include "wire/idem.h"

bool bg_idem_key_ok(struct bg_str key)
{
	if (key.len == 0 || key.len > BG_IDEM_KEY_MAX)
		return false;
	for (size_t i = 0; i < key.len; i++) {
		unsigned char c = (unsigned char)key.p[i];
		if (c < 0x21 || c > 0x7e)
			return false;
	}
	return true;
}
