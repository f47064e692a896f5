/* tests/unit/test_cluster_slot.c - cluster/slot.h and cluster/slotmap.h:
 * key slots (against values Redis itself gives: CLUSTER KEYSLOT), the
 * slot of a whole command, CLUSTER SLOTS replies, redirections and seed
 * lists. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/slot.h"
#include "cluster/slotmap.h"

static void crc16_check_value(void **st)
{
	(void)st;
	assert_int_equal(bg_slot_crc16("123456789", 9), 0x31C3);
	assert_int_equal(bg_slot_crc16("", 0), 0);
}

/* The slots Redis 7.0's CLUSTER KEYSLOT gives for these keys. */
static void slots_match_redis(void **st)
{
	(void)st;
	assert_int_equal(bg_slot_of("foo", 3), 12182);
	assert_int_equal(bg_slot_of("bar", 3), 5061);
	assert_int_equal(bg_slot_of("somekey", 7), 11058);
	assert_int_equal(bg_slot_of("{user1000}.following", 20),
			 bg_slot_of("user1000", 8));
	assert_int_equal(bg_slot_of("{user1000}.followers", 20),
			 bg_slot_of("{user1000}.following", 20));
}

static void hash_tag_rules(void **st)
{
	(void)st;
	/* only the first { and the first } after it count */
	assert_int_equal(bg_slot_of("foo{bar}{zap}", 13), bg_slot_of("bar", 3));
	assert_int_equal(bg_slot_of("foo{{bar}}zap", 13),
			 bg_slot_of("{bar", 4));
	/* an empty tag or none closed: the whole key */
	assert_int_equal(bg_slot_of("foo{}{bar}", 10),
			 bg_slot_crc16("foo{}{bar}", 10) & 16383);
	assert_int_equal(bg_slot_of("foo{bar", 7),
			 bg_slot_crc16("foo{bar", 7) & 16383);
	/* the v2 schema's keys of one session share a slot */
	const char *a = "byai_gateway:v2:registry:session:{s-1}";
	const char *b = "byai_gateway:v2:data:session:{s-1}";
	assert_int_equal(bg_slot_of(a, strlen(a)), bg_slot_of(b, strlen(b)));
	/* bytes after a NUL are part of the key */
	assert_int_not_equal(bg_slot_of("a\0b", 3), bg_slot_of("a", 1));
}

static void every_slot_has_a_tag(void **st)
{
	(void)st;
	for (int s = 0; s < BG_SLOTS; s++) {
		const char *t = bg_slot_tag(s);
		assert_non_null(t);
		assert_true(strlen(t) <= 7);
		assert_int_equal(bg_slot_of(t, strlen(t)), s);
		char key[64];
		snprintf(key, sizeof(key), "guard:{%s}", t);
		assert_int_equal(bg_slot_of(key, strlen(key)), s);
	}
	assert_null(bg_slot_tag(-1));
	assert_null(bg_slot_tag(BG_SLOTS));
	assert_string_equal(bg_slot_tag(bg_slot_of("0", 1)), "0");
}

static int slot(const char *const *argv, int argc)
{
	return bg_slot_of_command(argc, argv, NULL, NULL);
}

#define SLOT(...)                                                              \
	slot((const char *const[]){ __VA_ARGS__ },                             \
	     (int)(sizeof((const char *const[]){ __VA_ARGS__ }) /              \
		   sizeof(const char *)))

static void command_slots(void **st)
{
	(void)st;
	int foo = bg_slot_of("foo", 3);
	assert_int_equal(SLOT("HSET", "foo", "f", "v"), foo);
	assert_int_equal(SLOT("hget", "foo", "f"), foo);
	assert_int_equal(SLOT("PING"), BG_SLOT_NONE);
	assert_int_equal(SLOT("MULTI"), BG_SLOT_NONE);
	assert_int_equal(SLOT("SCAN", "0", "MATCH", "x*"), BG_SLOT_NONE);
	assert_int_equal(SLOT("NOSUCHCOMMAND", "foo"), BG_SLOT_UNKNOWN);
	assert_int_equal(SLOT("HSET"), BG_SLOT_UNKNOWN); /* no key */
	/* several keys: one slot, or CROSSSLOT */
	assert_int_equal(SLOT("DEL", "{a}1", "{a}2"), bg_slot_of("a", 1));
	assert_int_equal(SLOT("DEL", "foo", "bar"), BG_SLOT_CROSS);
	assert_int_equal(SLOT("MSET", "{t}x", "1", "{t}y", "2"),
			 bg_slot_of("t", 1));
	assert_int_equal(SLOT("MSET", "foo", "1", "bar", "2"), BG_SLOT_CROSS);
	/* scripts: the keys counted by numkeys */
	assert_int_equal(SLOT("EVALSHA", "abc", "2", "{k}1", "{k}2", "arg"),
			 bg_slot_of("k", 1));
	assert_int_equal(SLOT("EVAL", "return 1", "0", "foo"), BG_SLOT_NONE);
	assert_int_equal(SLOT("EVAL", "s", "2", "foo"), BG_SLOT_UNKNOWN);
	assert_int_equal(SLOT("EVAL", "s", "x", "foo"), BG_SLOT_UNKNOWN);
	assert_int_equal(SLOT("EVAL", "s", "2", "foo", "bar"), BG_SLOT_CROSS);
	/* streams: the keys after STREAMS, one per id */
	assert_int_equal(SLOT("XREADGROUP", "GROUP", "g", "c", "COUNT", "1",
			      "STREAMS", "foo", ">"),
			 foo);
	assert_int_equal(SLOT("XREAD", "BLOCK", "0", "streams", "foo", "bar",
			      "$", "$"),
			 BG_SLOT_CROSS);
	assert_int_equal(SLOT("XREAD", "STREAMS", "foo"), BG_SLOT_UNKNOWN);
	/* a group or consumer named "streams" is not the keyword */
	assert_int_equal(SLOT("XREADGROUP", "GROUP", "streams", "STREAMS",
			      "STREAMS", "foo", ">"),
			 foo);
	assert_int_equal(SLOT("XGROUP", "CREATE", "foo", "g", "$"), foo);
	assert_int_equal(SLOT("XINFO", "GROUPS", "foo"), foo);
	assert_int_equal(SLOT("ZUNIONSTORE", "{z}d", "2", "{z}a", "{z}b"),
			 bg_slot_of("z", 1));
	assert_int_equal(SLOT("ZUNIONSTORE", "d", "2", "{z}a", "{z}b"),
			 BG_SLOT_CROSS);
	int first = 0;
	const char *argv[] = { "EVALSHA", "sha", "1", "foo" };
	assert_int_equal(bg_slot_of_command(4, argv, NULL, &first), foo);
	assert_int_equal(first, 3);
	/* lengths given: binary keys */
	const char *bin[] = { "GET", "a\0b" };
	size_t lens[] = { 3, 3 };
	assert_int_equal(bg_slot_of_command(2, bin, lens, NULL),
			 bg_slot_of("a\0b", 3));
}

/* Builders of fake replies (hiredis's own reply objects, freed with
 * freeReplyObject). */
static redisReply *rep(int type)
{
	redisReply *r = calloc(1, sizeof(*r));
	r->type = type;
	return r;
}

static redisReply *str(const char *s)
{
	redisReply *r = rep(REDIS_REPLY_STRING);
	r->len = strlen(s);
	r->str = strdup(s);
	return r;
}

static redisReply *num(long long v)
{
	redisReply *r = rep(REDIS_REPLY_INTEGER);
	r->integer = v;
	return r;
}

static redisReply *arr(size_t n, ...)
{
	redisReply *r = rep(REDIS_REPLY_ARRAY);
	va_list ap;
	r->elements = n;
	r->element = calloc(n ? n : 1, sizeof(*r->element));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		r->element[i] = va_arg(ap, redisReply *);
	va_end(ap);
	return r;
}

static redisReply *node(const char *host, int port, const char *id)
{
	return arr(3, str(host), num(port), str(id));
}

static void slots_reply_is_loaded(void **st)
{
	(void)st;
	struct bg_slotmap m = { 0 };
	char err[256];
	redisReply *r =
		arr(3,
		    arr(4, num(0), num(5460), node("127.0.0.1", 7001, "a1"),
			node("127.0.0.1", 7004, "r1")),
		    arr(3, num(5461), num(10922), node("", 7002, "a2")),
		    arr(4, num(10923), num(16383),
			node("127.0.0.1", 7003, "a3"), node("?", 7006, "r3")));
	/* a NIL endpoint (unknown-endpoint) is the node asked, as "" */
	freeReplyObject(r->element[1]->element[2]->element[0]);
	r->element[1]->element[2]->element[0] = rep(REDIS_REPLY_NIL);
	assert_int_equal(bg_slotmap_load(&m, r, "10.0.0.9", err, sizeof(err)),
			 0);
	assert_int_equal(m.covered, 16384);
	int a = bg_slotmap_owner(&m, 0), b = bg_slotmap_owner(&m, 5461);
	int c = bg_slotmap_owner(&m, 16383);
	assert_string_equal(m.nodes[a].host, "127.0.0.1");
	assert_int_equal(m.nodes[a].port, 7001);
	assert_string_equal(m.nodes[a].id, "a1");
	assert_true(m.nodes[a].master);
	/* an empty host is the node that was asked */
	assert_string_equal(m.nodes[b].host, "10.0.0.9");
	assert_int_equal(m.nodes[c].port, 7003);
	assert_int_equal(bg_slotmap_owner(&m, 5460), a);
	int r1 = bg_slotmap_node(&m, "127.0.0.1", 7004);
	assert_true(m.nodes[r1].replica);
	assert_false(m.nodes[r1].master);
	assert_int_equal(m.n_nodes, 4); /* "?" is not a usable node */
	freeReplyObject(r);

	/* a refresh after a failover: the replica owns the range now;
	 * indexes of known nodes stay */
	r = arr(1, arr(3, num(0), num(100), node("127.0.0.1", 7004, "r1")));
	assert_int_equal(bg_slotmap_load(&m, r, "x", err, sizeof(err)), 0);
	assert_int_equal(bg_slotmap_owner(&m, 50), r1);
	assert_int_equal(bg_slotmap_owner(&m, 101), -1);
	assert_int_equal(m.covered, 101);
	assert_false(m.nodes[a].master);
	freeReplyObject(r);
	bg_slotmap_free(&m);
}

static void malformed_slots_reply_changes_nothing(void **st)
{
	(void)st;
	struct bg_slotmap m = { 0 };
	char err[256];
	redisReply *good =
		arr(1, arr(3, num(0), num(16383), node("h", 1, "i")));
	assert_int_equal(bg_slotmap_load(&m, good, "x", err, sizeof(err)), 0);
	redisReply *bad[] = {
		str("nope"),
		arr(1, arr(3, num(5), num(2), node("h", 1, "i"))),
		arr(1, arr(3, num(0), num(16384), node("h", 1, "i"))),
		arr(1, arr(3, num(0), num(1), node("h", 0, "i"))),
		arr(1, arr(3, num(0), num(1), arr(1, str("h")))),
		arr(1, arr(2, num(0), num(1))),
		arr(2, arr(3, num(0), num(1), node("h", 2, "i")),
		    arr(3, num(2), num(3), node("?", 3, "j"))),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_slotmap_load(&m, bad[i], "x", err,
						 sizeof(err)),
				 -EPROTO);
		assert_non_null(strstr(err, "CLUSTER SLOTS"));
		assert_int_equal(m.covered, 16384);
		assert_int_equal(bg_slotmap_owner(&m, 2), 0);
		freeReplyObject(bad[i]);
	}
	freeReplyObject(good);
	bg_slotmap_free(&m);
	assert_int_equal(bg_slotmap_owner(&m, 0), -1);
}

static void redirects_are_read(void **st)
{
	(void)st;
	struct bg_redirect r;
#define PARSE(s) (r = bg_redirect_parse(s, strlen(s)))
	PARSE("MOVED 3999 127.0.0.1:6381");
	assert_int_equal(r.kind, BG_REDIRECT_MOVED);
	assert_int_equal(r.slot, 3999);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 6381);
	PARSE("ASK 12 [::1]:7000");
	assert_int_equal(r.kind, BG_REDIRECT_ASK);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 7000);
	PARSE("ASK 12 ::1:7000");
	assert_string_equal(r.host, "::1");
	PARSE("MOVED 7 :6380"); /* unknown endpoint: the node asked */
	assert_int_equal(r.kind, BG_REDIRECT_MOVED);
	assert_string_equal(r.host, "");
	PARSE("TRYAGAIN Multiple keys request during rehashing of slot");
	assert_int_equal(r.kind, BG_REDIRECT_TRYAGAIN);
	PARSE("CLUSTERDOWN The cluster is down");
	assert_int_equal(r.kind, BG_REDIRECT_CLUSTERDOWN);
	const char *plain[] = { "ERR wrong number of arguments",
				"MOVED",
				"MOVED x 127.0.0.1:1",
				"MOVED 16384 h:1",
				"MOVED 1 h:0",
				"MOVED 1 h:99999",
				"MOVED 1 h",
				"MOVEDX 1 h:1",
				"ASKING",
				"CROSSSLOT Keys in request don't hash to the "
				"same slot" };
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		PARSE(plain[i]);
		assert_int_equal(r.kind, BG_REDIRECT_NONE);
	}
	r = bg_redirect_parse(NULL, 0);
	assert_int_equal(r.kind, BG_REDIRECT_NONE);
#undef PARSE
}

static void seed_lists(void **st)
{
	(void)st;
	struct bg_slotmap m = { 0 };
	char err[256];
	assert_int_equal(bg_slotmap_seeds(&m,
					  " 127.0.0.1:7001, h2:7002,h3,"
					  "[::1]:7003, ::1 ",
					  6379, err, sizeof(err)),
			 0);
	assert_int_equal(m.n_nodes, 5);
	assert_string_equal(m.nodes[0].host, "127.0.0.1");
	assert_int_equal(m.nodes[0].port, 7001);
	assert_int_equal(m.nodes[2].port, 6379);
	assert_string_equal(m.nodes[3].host, "::1");
	assert_int_equal(m.nodes[3].port, 7003);
	assert_int_equal(m.nodes[4].port, 6379);
	/* a repeated node is listed once */
	assert_int_equal(bg_slotmap_seeds(&m, "h2:7002", 1, err, sizeof(err)),
			 0);
	assert_int_equal(m.n_nodes, 5);
	const char *bad[] = {
		"h:0", "h:x", ":7000", "[::1", "[::1]x", "h:70000"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bg_slotmap_seeds(&m, bad[i], 1, err,
						  sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "host:port"));
	}
	bg_slotmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc16_check_value),
		cmocka_unit_test(slots_match_redis),
		cmocka_unit_test(hash_tag_rules),
		cmocka_unit_test(every_slot_has_a_tag),
		cmocka_unit_test(command_slots),
		cmocka_unit_test(slots_reply_is_loaded),
		cmocka_unit_test(malformed_slots_reply_changes_nothing),
		cmocka_unit_test(redirects_are_read),
		cmocka_unit_test(seed_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
