/* workspace/cache.c - the bounded LRU cache of session directory descriptors
 * (workspace/workspace.h): a chained hash table over (root, rel_session) and
 * a recency list whose tail is closed first. Two descriptors per entry. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "workspace/internal.h"

struct entry {
	struct entry *hnext;	   /* hash chain */
	struct entry *prev, *next; /* recency list, most recent first */
	uint64_t hash;
	struct bg_ws_dirs dirs;
	size_t keylen;
	char key[]; /* root '\0' rel */
};

struct bg_ws_cache {
	struct entry **buckets;
	size_t mask; /* buckets - 1, a power of two minus one */
	size_t n, max;
	struct entry lru; /* list head: lru.next most, lru.prev least recent */
};

/* Entries whose descriptors (two each) are at most an eighth of the
 * descriptor limit, so that the cache cannot starve the rest of the process
 * (children, connections) of descriptors. */
static size_t fd_budget(size_t max)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 16 < max)
		return rl.rlim_cur / 16 > 0 ? (size_t)(rl.rlim_cur / 16) : 1;
	return max;
}

int bg_ws_cache_new(size_t max, struct bg_ws_cache **out)
{
	size_t nb = 16;
	struct bg_ws_cache *c;

	if (max == 0 || max > SIZE_MAX / 4)
		return -EINVAL;
	max = fd_budget(max);
	while (nb < max)
		nb *= 2;
	c = calloc(1, sizeof(*c));
	if (c != NULL)
		c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c == NULL || c->buckets == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->mask = nb - 1;
	c->max = max;
	c->lru.next = c->lru.prev = &c->lru;
	*out = c;
	return 0;
}

/* FNV-1a over root, a NUL, rel. */
static uint64_t key_hash(const struct bg_ws_key *k)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < k->rootlen; i++)
		h = (h ^ (unsigned char)k->root[i]) * 0x100000001b3ULL;
	h *= 0x100000001b3ULL; /* the NUL */
	for (size_t i = 0; i < k->rellen; i++)
		h = (h ^ (unsigned char)k->rel[i]) * 0x100000001b3ULL;
	return h;
}

static bool key_is(const struct entry *e, uint64_t h, const struct bg_ws_key *k)
{
	return e->hash == h && e->keylen == k->rootlen + 1 + k->rellen &&
	       memcmp(e->key, k->root, k->rootlen) == 0 &&
	       e->key[k->rootlen] == '\0' &&
	       memcmp(e->key + k->rootlen + 1, k->rel, k->rellen) == 0;
}

static struct entry *lookup(struct bg_ws_cache *c, uint64_t h,
			    const struct bg_ws_key *k)
{
	struct entry *e = c->buckets[h & c->mask];

	while (e != NULL && !key_is(e, h, k))
		e = e->hnext;
	return e;
}

static void lru_unlink(struct entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push_front(struct bg_ws_cache *c, struct entry *e)
{
	e->prev = &c->lru;
	e->next = c->lru.next;
	c->lru.next->prev = e;
	c->lru.next = e;
}

/* Unlinks e from its chain and the list, closes its descriptor, frees it. */
static void remove_entry(struct bg_ws_cache *c, struct entry *e)
{
	struct entry **l = &c->buckets[e->hash & c->mask];

	while (*l != e)
		l = &(*l)->hnext;
	*l = e->hnext;
	lru_unlink(e);
	close(e->dirs.session);
	close(e->dirs.priv);
	free(e);
	c->n--;
}

struct bg_ws_dirs *bg_ws_cache_find(struct bg_ws_cache *c,
				    const struct bg_ws_key *k)
{
	struct entry *e = lookup(c, key_hash(k), k);

	if (e == NULL)
		return NULL;
	if (c->lru.next != e) {
		lru_unlink(e);
		lru_push_front(c, e);
	}
	return &e->dirs;
}

void bg_ws_cache_put(struct bg_ws_cache *c, const struct bg_ws_key *k,
		     const struct bg_ws_dirs *d)
{
	size_t keylen = k->rootlen + 1 + k->rellen;
	struct entry *e = malloc(sizeof(*e) + keylen);

	if (e == NULL) {
		close(d->session);
		close(d->priv);
		return;
	}
	if (c->n == c->max)
		remove_entry(c, c->lru.prev);
	memcpy(e->key, k->root, k->rootlen);
	e->key[k->rootlen] = '\0';
	memcpy(e->key + k->rootlen + 1, k->rel, k->rellen);
	e->keylen = keylen;
	e->hash = key_hash(k);
	e->dirs = *d;
	e->hnext = c->buckets[e->hash & c->mask];
	c->buckets[e->hash & c->mask] = e;
	lru_push_front(c, e);
	c->n++;
}

void bg_ws_cache_drop(struct bg_ws_cache *c, const struct bg_ws_key *k)
{
	struct entry *e = lookup(c, key_hash(k), k);

	if (e != NULL)
		remove_entry(c, e);
}

void bg_ws_cache_free(struct bg_ws_cache *c)
{
	if (c == NULL)
		return;
	while (c->n > 0)
		remove_entry(c, c->lru.prev);
	free(c->buckets);
	free(c);
}
