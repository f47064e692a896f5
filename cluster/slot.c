/* cluster/slot.c - key slots (slot.h). The key positions follow Redis's
 * own key specs (COMMAND INFO: first key, last key, step) for the commands
 * bygate and its tools send; a command outside the table is
 * BG_SLOT_UNKNOWN rather than guessed. */
#include "cluster/slot.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint16_t bg_slot_crc16(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint16_t crc = 0;
	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)(s[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
					     : (uint16_t)(crc << 1);
	}
	return crc;
}

/* Tags of every slot: "0".."N" hashed until each slot has one (the largest
 * needed is below 10^6, so 7 bytes each). */
#define TAG_SIZE 8

const char *bg_slot_tag(int slot)
{
	static char(*table)[TAG_SIZE];
	if (slot < 0 || slot >= BG_SLOTS)
		return NULL;
	if (table == NULL) {
		char(*t)[TAG_SIZE] = calloc(BG_SLOTS, TAG_SIZE);
		if (t == NULL)
			return NULL;
		int left = BG_SLOTS;
		for (unsigned n = 0; left > 0 && n < 10000000u; n++) {
			char s[TAG_SIZE];
			int len = snprintf(s, sizeof(s), "%u", n);
			int k = bg_slot_crc16(s, (size_t)len) & (BG_SLOTS - 1);
			if (t[k][0] == '\0') {
				memcpy(t[k], s, (size_t)len + 1);
				left--;
			}
		}
		table = t;
	}
	return table[slot][0] ? table[slot] : NULL;
}

int bg_slot_of(const void *key, size_t len)
{
	const char *k = key;
	const char *open = memchr(k, '{', len);
	if (open) {
		size_t at = (size_t)(open - k) + 1;
		const char *close = memchr(open + 1, '}', len - at);
		if (close && close > open + 1)
			return bg_slot_crc16(open + 1,
					     (size_t)(close - open - 1)) &
			       (BG_SLOTS - 1);
	}
	return bg_slot_crc16(k, len) & (BG_SLOTS - 1);
}

/* How a command names its keys. */
enum spec {
	KEYLESS,  /* no key */
	RANGE,	  /* argv[first], then every step-th up to last */
	NUMKEYS,  /* EVAL-like: argv[first] is a count, the keys follow it */
	STREAMS,  /* XREAD, XREADGROUP: keys after STREAMS, half the rest */
	STORE_NK, /* ZUNIONSTORE-like: a destination, a count, the keys */
};

struct command {
	const char *name;
	enum spec spec;
	int first; /* RANGE: index of the first key; NUMKEYS: of the count */
	int last;  /* RANGE: index of the last key, -1 = the last argument */
	int step;
};

/* Sorted by nothing: small, searched once per command sent. */
static const struct command commands[] = {
	/* strings, keys */
	{ "GET", RANGE, 1, 1, 1 },
	{ "SET", RANGE, 1, 1, 1 },
	{ "SETEX", RANGE, 1, 1, 1 },
	{ "SETNX", RANGE, 1, 1, 1 },
	{ "GETDEL", RANGE, 1, 1, 1 },
	{ "INCR", RANGE, 1, 1, 1 },
	{ "INCRBY", RANGE, 1, 1, 1 },
	{ "DECR", RANGE, 1, 1, 1 },
	{ "MGET", RANGE, 1, -1, 1 },
	{ "MSET", RANGE, 1, -1, 2 },
	{ "DEL", RANGE, 1, -1, 1 },
	{ "UNLINK", RANGE, 1, -1, 1 },
	{ "EXISTS", RANGE, 1, -1, 1 },
	{ "EXPIRE", RANGE, 1, 1, 1 },
	{ "PEXPIRE", RANGE, 1, 1, 1 },
	{ "EXPIREAT", RANGE, 1, 1, 1 },
	{ "PEXPIREAT", RANGE, 1, 1, 1 },
	{ "PERSIST", RANGE, 1, 1, 1 },
	{ "TTL", RANGE, 1, 1, 1 },
	{ "PTTL", RANGE, 1, 1, 1 },
	{ "TYPE", RANGE, 1, 1, 1 },
	{ "RENAME", RANGE, 1, 2, 1 },
	{ "DUMP", RANGE, 1, 1, 1 },
	{ "WATCH", RANGE, 1, -1, 1 },
	/* hashes */
	{ "HSET", RANGE, 1, 1, 1 },
	{ "HSETNX", RANGE, 1, 1, 1 },
	{ "HMSET", RANGE, 1, 1, 1 },
	{ "HGET", RANGE, 1, 1, 1 },
	{ "HMGET", RANGE, 1, 1, 1 },
	{ "HGETALL", RANGE, 1, 1, 1 },
	{ "HDEL", RANGE, 1, 1, 1 },
	{ "HEXISTS", RANGE, 1, 1, 1 },
	{ "HINCRBY", RANGE, 1, 1, 1 },
	{ "HKEYS", RANGE, 1, 1, 1 },
	{ "HVALS", RANGE, 1, 1, 1 },
	{ "HLEN", RANGE, 1, 1, 1 },
	{ "HSCAN", RANGE, 1, 1, 1 },
	/* lists */
	{ "RPUSH", RANGE, 1, 1, 1 },
	{ "LPUSH", RANGE, 1, 1, 1 },
	{ "LRANGE", RANGE, 1, 1, 1 },
	{ "LTRIM", RANGE, 1, 1, 1 },
	{ "LLEN", RANGE, 1, 1, 1 },
	{ "LPOP", RANGE, 1, 1, 1 },
	{ "RPOP", RANGE, 1, 1, 1 },
	/* sets */
	{ "SADD", RANGE, 1, 1, 1 },
	{ "SREM", RANGE, 1, 1, 1 },
	{ "SMEMBERS", RANGE, 1, 1, 1 },
	{ "SISMEMBER", RANGE, 1, 1, 1 },
	{ "SCARD", RANGE, 1, 1, 1 },
	{ "SSCAN", RANGE, 1, 1, 1 },
	/* sorted sets */
	{ "ZADD", RANGE, 1, 1, 1 },
	{ "ZREM", RANGE, 1, 1, 1 },
	{ "ZCARD", RANGE, 1, 1, 1 },
	{ "ZCOUNT", RANGE, 1, 1, 1 },
	{ "ZSCORE", RANGE, 1, 1, 1 },
	{ "ZINCRBY", RANGE, 1, 1, 1 },
	{ "ZRANGE", RANGE, 1, 1, 1 },
	{ "ZREVRANGE", RANGE, 1, 1, 1 },
	{ "ZRANGEBYSCORE", RANGE, 1, 1, 1 },
	{ "ZREVRANGEBYSCORE", RANGE, 1, 1, 1 },
	{ "ZREMRANGEBYSCORE", RANGE, 1, 1, 1 },
	{ "ZREMRANGEBYRANK", RANGE, 1, 1, 1 },
	{ "ZPOPMIN", RANGE, 1, 1, 1 },
	{ "ZPOPMAX", RANGE, 1, 1, 1 },
	{ "ZSCAN", RANGE, 1, 1, 1 },
	{ "ZUNIONSTORE", STORE_NK, 1, 2, 0 },
	{ "ZINTERSTORE", STORE_NK, 1, 2, 0 },
	/* streams */
	{ "XADD", RANGE, 1, 1, 1 },
	{ "XACK", RANGE, 1, 1, 1 },
	{ "XDEL", RANGE, 1, 1, 1 },
	{ "XLEN", RANGE, 1, 1, 1 },
	{ "XRANGE", RANGE, 1, 1, 1 },
	{ "XREVRANGE", RANGE, 1, 1, 1 },
	{ "XTRIM", RANGE, 1, 1, 1 },
	{ "XPENDING", RANGE, 1, 1, 1 },
	{ "XCLAIM", RANGE, 1, 1, 1 },
	{ "XAUTOCLAIM", RANGE, 1, 1, 1 },
	{ "XGROUP", RANGE, 2, 2, 1 }, /* XGROUP CREATE <key> ... */
	{ "XINFO", RANGE, 2, 2, 1 },  /* XINFO STREAM|GROUPS <key> ... */
	{ "XREAD", STREAMS, 1, 0, 0 },
	{ "XREADGROUP", STREAMS, 4, 0, 0 }, /* after GROUP g c */
	/* scripts */
	{ "EVAL", NUMKEYS, 2, 0, 0 },
	{ "EVALSHA", NUMKEYS, 2, 0, 0 },
	{ "EVAL_RO", NUMKEYS, 2, 0, 0 },
	{ "EVALSHA_RO", NUMKEYS, 2, 0, 0 },
	{ "FCALL", NUMKEYS, 2, 0, 0 },
	/* no key: any node answers */
	{ "PING", KEYLESS, 0, 0, 0 },
	{ "ECHO", KEYLESS, 0, 0, 0 },
	{ "INFO", KEYLESS, 0, 0, 0 },
	{ "TIME", KEYLESS, 0, 0, 0 },
	{ "SCAN", KEYLESS, 0, 0, 0 },
	{ "KEYS", KEYLESS, 0, 0, 0 },
	{ "DBSIZE", KEYLESS, 0, 0, 0 },
	{ "MULTI", KEYLESS, 0, 0, 0 },
	{ "EXEC", KEYLESS, 0, 0, 0 },
	{ "DISCARD", KEYLESS, 0, 0, 0 },
	{ "UNWATCH", KEYLESS, 0, 0, 0 },
	{ "ASKING", KEYLESS, 0, 0, 0 },
	{ "READONLY", KEYLESS, 0, 0, 0 },
	{ "READWRITE", KEYLESS, 0, 0, 0 },
	{ "CLUSTER", KEYLESS, 0, 0, 0 },
	{ "CLIENT", KEYLESS, 0, 0, 0 },
	{ "AUTH", KEYLESS, 0, 0, 0 },
	{ "HELLO", KEYLESS, 0, 0, 0 },
	{ "SELECT", KEYLESS, 0, 0, 0 },
	{ "SCRIPT", KEYLESS, 0, 0, 0 },
	{ "COMMAND", KEYLESS, 0, 0, 0 },
	{ "CONFIG", KEYLESS, 0, 0, 0 },
	{ "ROLE", KEYLESS, 0, 0, 0 },
	{ "SLOWLOG", KEYLESS, 0, 0, 0 },
	{ "FLUSHALL", KEYLESS, 0, 0, 0 },
	{ "FLUSHDB", KEYLESS, 0, 0, 0 },
	{ "WAIT", KEYLESS, 0, 0, 0 },
	{ "ACL", KEYLESS, 0, 0, 0 },
};

static const struct command *find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].name) == len &&
		    strncasecmp(commands[i].name, name, len) == 0)
			return &commands[i];
	return NULL;
}

struct walk {
	int argc;
	const char *const *argv;
	const size_t *lens;
	int slot;  /* so far: BG_SLOT_NONE until the first key */
	int first; /* argv index of the first key */
};

static size_t len_of(const struct walk *w, int i)
{
	return w->lens ? w->lens[i] : strlen(w->argv[i]);
}

static void add_key(struct walk *w, int i)
{
	int s = bg_slot_of(w->argv[i], len_of(w, i));
	if (w->slot == BG_SLOT_NONE) {
		w->slot = s;
		w->first = i;
	} else if (w->slot >= 0 && w->slot != s) {
		w->slot = BG_SLOT_CROSS;
	}
}

/* A non-negative decimal count in argv[i], or -1. */
static long count_at(const struct walk *w, int i)
{
	size_t n = len_of(w, i);
	long v = 0;
	if (n == 0 || n > 9)
		return -1;
	for (size_t k = 0; k < n; k++) {
		char c = w->argv[i][k];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	return v;
}

static int walk_range(struct walk *w, const struct command *c)
{
	int last = c->last < 0 ? w->argc - 1 : c->last;
	if (c->first >= w->argc || last >= w->argc)
		return BG_SLOT_UNKNOWN;
	for (int i = c->first; i <= last; i += c->step)
		add_key(w, i);
	return w->slot;
}

/* `count` keys from argv[from] on. */
static int walk_counted(struct walk *w, int at, int from)
{
	if (at >= w->argc)
		return BG_SLOT_UNKNOWN;
	long n = count_at(w, at);
	if (n < 0 || n > w->argc - from)
		return BG_SLOT_UNKNOWN;
	for (int i = 0; i < n; i++)
		add_key(w, from + i);
	return w->slot;
}

/* XREADGROUP GROUP g c ...: the group and consumer names are not the
 * STREAMS keyword even when they read "streams". */
static int walk_streams(struct walk *w, int from)
{
	for (int i = from; i < w->argc; i++) {
		if (len_of(w, i) != 7 || strncasecmp(w->argv[i], "STREAMS", 7))
			continue;
		int rest = w->argc - i - 1;
		if (rest < 2 || rest % 2)
			return BG_SLOT_UNKNOWN;
		for (int k = 0; k < rest / 2; k++)
			add_key(w, i + 1 + k);
		return w->slot;
	}
	return BG_SLOT_UNKNOWN;
}

int bg_slot_of_command(int argc, const char *const *argv, const size_t *lens,
		       int *first_key)
{
	struct walk w = { argc, argv, lens, BG_SLOT_NONE, -1 };
	int slot = BG_SLOT_UNKNOWN;
	const struct command *c =
		argc > 0 ? find(argv[0], lens ? lens[0] : strlen(argv[0]))
			 : NULL;
	if (c) {
		switch (c->spec) {
		case KEYLESS:
			slot = BG_SLOT_NONE;
			break;
		case RANGE:
			slot = walk_range(&w, c);
			break;
		case NUMKEYS:
			slot = walk_counted(&w, c->first, c->first + 1);
			break;
		case STREAMS:
			slot = walk_streams(&w, c->first);
			break;
		case STORE_NK:
			if (c->first < argc)
				add_key(&w, c->first);
			slot = walk_counted(&w, c->last, c->last + 1);
			break;
		}
	}
	if (first_key)
		*first_key = slot >= 0 ? w.first : -1;
	return slot;
}
