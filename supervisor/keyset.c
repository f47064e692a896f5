/* supervisor/keyset.c - a small set of key strings, cleared every loop turn:
 * it makes "one EXPIRE per key per flush" cheap (WIRE 11 item 6). */
#include <stdlib.h>
#include <string.h>

#include "supervisor/daemon.h"

struct bg_keyset {
	char **slots;
	size_t cap, n;
	uint64_t gen; /* clears so far */
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct bg_keyset *bg_keyset_new(void)
{
	struct bg_keyset *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->cap = 256;
	s->slots = calloc(s->cap, sizeof(char *));
	if (s->slots == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

static void grow(struct bg_keyset *s)
{
	struct bg_keyset big = { .slots = calloc(s->cap * 2, sizeof(char *)),
				 .cap = s->cap * 2 };
	if (big.slots == NULL)
		return;
	for (size_t i = 0; i < s->cap; i++) {
		char *k = s->slots[i];
		if (k == NULL)
			continue;
		size_t j = hash(k) & (big.cap - 1);
		while (big.slots[j])
			j = (j + 1) & (big.cap - 1);
		big.slots[j] = k;
	}
	free(s->slots);
	s->slots = big.slots;
	s->cap = big.cap;
}

bool bg_keyset_add(struct bg_keyset *s, const char *key)
{
	if ((s->n + 1) * 2 > s->cap)
		grow(s);
	size_t j = hash(key) & (s->cap - 1);
	while (s->slots[j]) {
		if (strcmp(s->slots[j], key) == 0)
			return false;
		j = (j + 1) & (s->cap - 1);
	}
	s->slots[j] = strdup(key);
	if (s->slots[j] == NULL)
		return true; /* no memory: send the EXPIRE anyway */
	s->n++;
	return true;
}

uint64_t bg_keyset_gen(const struct bg_keyset *s)
{
	return s ? s->gen : 0;
}

void bg_keyset_clear(struct bg_keyset *s)
{
	s->gen++;
	if (s->n == 0)
		return;
	for (size_t i = 0; i < s->cap; i++) {
		free(s->slots[i]);
		s->slots[i] = NULL;
	}
	s->n = 0;
}

void bg_keyset_free(struct bg_keyset *s)
{
	if (s == NULL)
		return;
	bg_keyset_clear(s);
	free(s->slots);
	free(s);
}

void bg_expire_once(struct bg_daemon *d, const char *key)
{
	if (!bg_keyset_add(d->expired, key))
		return;
	bg_rconn_cmdv(d->wr, NULL, NULL, 0,
		      (const char *const[]){ "EXPIRE", key, "604800", NULL });
}
