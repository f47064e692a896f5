/* wire/command.c - control-stream command scanner (hot path, one pass over
 * the bytes with bg_json_iter), the WIRE 2.3 task-body rules, and the
 * jansson cold-path parse that checks every action's body. */
#include "wire/command.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "wire/json.h"

static const char *const action_names[] = {
	[BG_ACTION_UNKNOWN] = "UNKNOWN",
	[BG_ACTION_ASK_AGENT] = "ASK_AGENT",
	[BG_ACTION_RESUME] = "RESUME",
	[BG_ACTION_CANCEL_TASK] = "CANCEL_TASK",
	[BG_ACTION_RELOAD_PLUGINS] = "RELOAD_PLUGINS",
	[BG_ACTION_SUSPEND_WORKER] = "SUSPEND_WORKER",
	[BG_ACTION_RESUME_WORKER] = "RESUME_WORKER",
	[BG_ACTION_EVICT_WORKER] = "EVICT_WORKER",
	[BG_ACTION_ASK_USER] = "ASK_USER",
};

static const char *const hdr_names[BG_HDR__COUNT] = {
	"message_id",
	"session_id",
	"trace_id",
	"source_agent_type",
	"target_agent_type",
	"parent_message_id",
	"task_group_id",
	"user_code",
	"user_name",
	"metadata",
	"trace_parent_span_id",
	"langfuse_parent_observation_id",
};

#define HDR_ALIAS BG_HDR__COUNT	 /* index of the legacy "source_agent_id" */
#define NFIX (BG_HDR__COUNT + 3) /* header strings, alias, action, status */

/* Scanner state. Strings with escapes are decoded into cmd->arena, whose
 * storage may move while scanning: their views are resolved from offsets
 * once the scan ends (fix[]). */
struct scan {
	struct bg_cmd *cmd;
	bool saw_header;
	struct bg_str alias;
	bool alias_present;
	struct {
		struct bg_str *view;
		size_t off;
	} fix[NFIX];
	int nfix;
};

const char *bg_action_name(enum bg_action a)
{
	if ((unsigned)a >= sizeof action_names / sizeof action_names[0])
		return "UNKNOWN";
	return action_names[a];
}

const char *bg_hdr_name(enum bg_hdr_field f)
{
	return (unsigned)f < BG_HDR__COUNT ? hdr_names[f] : "";
}

static enum bg_action action_of(struct bg_str name)
{
	for (size_t a = 1; a < sizeof action_names / sizeof action_names[0];
	     a++)
		if (bg_str_eq(name, action_names[a]))
			return (enum bg_action)a;
	return BG_ACTION_UNKNOWN;
}

/* Record where `view` lives: arena offset, or SIZE_MAX for "in the input". */
static void set_fix(struct scan *s, struct bg_str *view, size_t off)
{
	int k = 0;

	while (k < s->nfix && s->fix[k].view != view)
		k++;
	if (k == s->nfix) {
		if (s->nfix == NFIX)
			return; /* unreachable: one slot per distinct view */
		s->nfix++;
	}
	s->fix[k].view = view;
	s->fix[k].off = off;
}

static void apply_fixes(struct scan *s)
{
	for (int k = 0; k < s->nfix; k++)
		if (s->fix[k].off != SIZE_MAX)
			s->fix[k].view->p = s->cmd->arena.p + s->fix[k].off;
}

/* Store the decoded value of the (already validated) string literal `lit`
 * in *view: a view into the input when it has no escapes, else a copy. */
static int take_string(struct scan *s, struct bg_str lit, struct bg_str *view)
{
	struct bg_buf *a = &s->cmd->arena;
	size_t off = a->len;
	int rc;

	if (memchr(lit.p, '\\', lit.len) == NULL) {
		view->p = lit.p + 1;
		view->len = lit.len - 2;
		set_fix(s, view, SIZE_MAX);
		return 0;
	}
	rc = bg_json_unescape(a, lit);
	if (rc)
		return rc == -ENOMEM ? rc : BG_CMD_EINVALID_JSON;
	view->p = NULL;
	view->len = a->len - off;
	set_fix(s, view, off);
	return 0;
}

/* The first byte of the current member's value. */
static char peek(const struct bg_json_iter *it)
{
	return it->pos < it->len ? it->p[it->pos] : 0;
}

static int next_value(struct bg_json_iter *it, struct bg_str *v)
{
	return bg_json_iter_value(it, v) ? BG_CMD_EINVALID_JSON : 0;
}

/* The current member's value must be an object, walked member by member
 * with `member` (*span = its bytes), or null (*span untouched). */
static int scan_object(struct scan *s, struct bg_json_iter *it,
		       int (*member)(struct scan *, struct bg_json_iter *,
				     struct bg_str),
		       struct bg_str *span)
{
	struct bg_json_iter o;
	struct bg_str key, v;
	int rc;

	if (peek(it) != '{') {
		rc = next_value(it, &v);
		return rc || v.p[0] == 'n' ? rc : BG_CMD_EINVALID_JSON;
	}
	if (bg_json_iter_enter(it, &o))
		return BG_CMD_EINVALID_JSON;
	while ((rc = bg_json_iter_key(&o, &key)) == 1)
		if ((rc = member(s, &o, key)) != 0)
			return rc;
	if (rc || bg_json_iter_leave(it, &o, span))
		return BG_CMD_EINVALID_JSON;
	return 0;
}

/* ---- header -------------------------------------------------------------- */

static const struct bg_str empty_obj = { "{}", 2 };

static void reset_header(struct scan *s)
{
	struct bg_cmd *c = s->cmd;

	for (int f = 0; f < BG_HDR__COUNT; f++) {
		c->hdr[f] = (struct bg_str){ "", 0 };
		c->hdr_present[f] = false;
		set_fix(s, &c->hdr[f], SIZE_MAX);
	}
	c->hdr[BG_HDR_METADATA] = empty_obj;
	s->alias = (struct bg_str){ "", 0 };
	s->alias_present = false;
	set_fix(s, &s->alias, SIZE_MAX);
}

static int header_field(struct bg_str key)
{
	for (int f = 0; f < BG_HDR__COUNT; f++)
		if (bg_json_str_eq(key, hdr_names[f]))
			return f;
	return bg_json_str_eq(key, "source_agent_id") ? HDR_ALIAS : -1;
}

/* One header member: strings (or null = absent) and the metadata object. */
static int scan_header_member(struct scan *s, struct bg_json_iter *h,
			      struct bg_str key)
{
	struct bg_cmd *c = s->cmd;
	int f = header_field(key);
	char t = peek(h);
	struct bg_str v, *view;
	bool *present;
	int rc = next_value(h, &v);

	if (rc || f < 0)
		return rc;
	view = f == HDR_ALIAS ? &s->alias : &c->hdr[f];
	present = f == HDR_ALIAS ? &s->alias_present : &c->hdr_present[f];
	if (t == 'n') {
		*view = f == BG_HDR_METADATA ? empty_obj
					     : (struct bg_str){ "", 0 };
		set_fix(s, view, SIZE_MAX);
		*present = false;
		return 0;
	}
	*present = true;
	if (f == BG_HDR_METADATA) {
		if (t != '{')
			return BG_CMD_EINVALID_JSON;
		*view = v;
		return 0;
	}
	return t == '"' ? take_string(s, v, view) : BG_CMD_EINVALID_JSON;
}

static int scan_header(struct scan *s, struct bg_json_iter *top)
{
	struct bg_str span = { NULL, 0 };
	int rc;

	reset_header(s);
	rc = scan_object(s, top, scan_header_member, &span);
	s->saw_header = rc == 0 && span.p != NULL;
	return rc;
}

/* ---- body ---------------------------------------------------------------- */

static void reset_body(struct scan *s)
{
	struct bg_cmd *c = s->cmd;

	c->body = empty_obj;
	c->content = (struct bg_str){ "", 0 };
	c->wait_for_reply = false;
	c->status = (struct bg_str){ "", 0 };
	c->has_status = false;
	set_fix(s, &c->status, SIZE_MAX);
	c->reply_data = (struct bg_str){ "null", 4 };
	c->extra_payload = empty_obj;
	c->body_type_error = 0;
}

/* One body member. Type errors are only noted: they matter for the task
 * actions, and action_type may come after the body. */
static int scan_body_member(struct scan *s, struct bg_json_iter *b,
			    struct bg_str key)
{
	struct bg_cmd *c = s->cmd;
	char t = peek(b);
	struct bg_str v;
	bool bad = false;
	int rc = next_value(b, &v);

	if (rc)
		return rc;
	if (bg_json_str_eq(key, "content")) {
		c->content = v;
	} else if (bg_json_str_eq(key, "wait_for_reply")) {
		c->wait_for_reply = t == 't';
		bad = t != 't' && t != 'f' && t != 'n';
	} else if (bg_json_str_eq(key, "status")) {
		c->has_status = t == '"';
		c->status = (struct bg_str){ "", 0 };
		set_fix(s, &c->status, SIZE_MAX);
		if (t == '"')
			return take_string(s, v, &c->status);
		bad = t != 'n';
	} else if (bg_json_str_eq(key, "reply_data")) {
		c->reply_data = v;
	} else if (bg_json_str_eq(key, "extra_payload")) {
		c->extra_payload = t == '{' ? v : empty_obj;
		bad = t != '{' && t != 'n';
	}
	if (bad)
		c->body_type_error = BG_CMD_EINVALID_JSON;
	return 0;
}

static int scan_body(struct scan *s, struct bg_json_iter *top)
{
	reset_body(s);
	return scan_object(s, top, scan_body_member, &s->cmd->body);
}

/* ---- top level ----------------------------------------------------------- */

static int scan_action(struct scan *s, struct bg_json_iter *top)
{
	struct bg_cmd *c = s->cmd;
	char t = peek(top);
	struct bg_str v;
	int rc = next_value(top, &v);

	c->action_name = (struct bg_str){ "", 0 };
	set_fix(s, &c->action_name, SIZE_MAX);
	if (rc || t != '"')
		return rc;
	return take_string(s, v, &c->action_name);
}

static int scan_top(struct scan *s, const char *data, size_t len)
{
	struct bg_json_iter top;
	struct bg_str key, v;
	size_t i;
	int rc;

	if (data == NULL || bg_json_iter_open(&top, data, len, 0, 0))
		return BG_CMD_EINVALID_JSON;
	while ((rc = bg_json_iter_key(&top, &key)) == 1) {
		if (bg_json_str_eq(key, "header"))
			rc = scan_header(s, &top);
		else if (bg_json_str_eq(key, "body"))
			rc = scan_body(s, &top);
		else if (bg_json_str_eq(key, "action_type"))
			rc = scan_action(s, &top);
		else
			rc = next_value(&top, &v);
		if (rc)
			return rc;
	}
	if (rc)
		return BG_CMD_EINVALID_JSON;
	for (i = top.pos; i < len; i++)
		if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' &&
		    data[i] != '\r')
			return BG_CMD_EINVALID_JSON;
	return 0;
}

/* A control character in a decoded string: U+0000-U+001F or U+007F. A
 * JSON text carries the first ones only escaped ("\u0000"), decoded into
 * the arena with their length, so none is lost here. */
static bool has_control(struct bg_str v)
{
	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)v.p[i] < 0x20 || v.p[i] == 0x7f)
			return true;
	return false;
}

int bg_cmd_bad_id(const struct bg_cmd *cmd, struct bg_str *value)
{
	for (int f = 0; f < BG_HDR__COUNT; f++) {
		if (f == BG_HDR_USER_NAME || f == BG_HDR_METADATA ||
		    !has_control(cmd->hdr[f]))
			continue;
		*value = cmd->hdr[f];
		return f;
	}
	return -1;
}

static int classify(const struct scan *s)
{
	const struct bg_cmd *c = s->cmd;
	struct bg_str bad;

	if (c->action == BG_ACTION_UNKNOWN || c->action == BG_ACTION_ASK_USER)
		return BG_CMD_EUNKNOWN_ACTION;
	if ((c->action == BG_ACTION_ASK_AGENT ||
	     c->action == BG_ACTION_RESUME) &&
	    c->body_type_error)
		return c->body_type_error;
	if (!s->saw_header || c->hdr[BG_HDR_SESSION_ID].len == 0 ||
	    !c->hdr_present[BG_HDR_TRACE_ID])
		return BG_CMD_EMISSING_HEADER;
	if (bg_cmd_bad_id(c, &bad) >= 0)
		return BG_CMD_EINVALID_ID;
	return 0;
}

int bg_cmd_scan(const char *data, size_t len, struct bg_cmd *cmd)
{
	struct scan s = { .cmd = cmd };
	int rc;

	memset(cmd, 0, sizeof *cmd);
	reset_header(&s);
	reset_body(&s);
	cmd->action_name = (struct bg_str){ "", 0 };
	rc = scan_top(&s, data, len);
	apply_fixes(&s);
	if (!cmd->hdr_present[BG_HDR_SOURCE_AGENT_TYPE] && s.alias_present) {
		cmd->hdr[BG_HDR_SOURCE_AGENT_TYPE] = s.alias;
		cmd->hdr_present[BG_HDR_SOURCE_AGENT_TYPE] = true;
	}
	cmd->need_message_id = cmd->hdr[BG_HDR_MESSAGE_ID].len == 0;
	cmd->action = action_of(cmd->action_name);
	return rc ? rc : classify(&s);
}

const char *bg_cmd_resume_step(const struct bg_cmd *c)
{
	struct bg_str src = c->hdr[BG_HDR_SOURCE_AGENT_TYPE];
	if (src.len && !bg_str_eq(src, "client") &&
	    c->hdr[BG_HDR_PARENT_MESSAGE_ID].len)
		return "sub-agent's callback";
	if (c->extra_payload.len <= 2 ||
	    memmem(c->extra_payload.p, c->extra_payload.len, "bygate_post",
		   11) == NULL)
		return NULL;
	json_t *x =
		json_loadb(c->extra_payload.p, c->extra_payload.len, 0, NULL);
	bool posted = json_is_object(json_object_get(x, "bygate_post"));
	json_decref(x);
	return posted ? "posted resume" : NULL;
}

void bg_cmd_free(struct bg_cmd *cmd)
{
	bg_buf_free(&cmd->arena);
}

/* ---- task rules ---------------------------------------------------------- */

/* A raw array or object with no element. */
static bool empty_container(struct bg_str raw)
{
	size_t i = 1;

	while (i < raw.len && (raw.p[i] == ' ' || raw.p[i] == '\t' ||
			       raw.p[i] == '\n' || raw.p[i] == '\r'))
		i++;
	return i < raw.len && (raw.p[i] == ']' || raw.p[i] == '}');
}

static bool content_nonempty(struct bg_str raw)
{
	switch (bg_json_type(raw)) {
	case '"':
		return raw.len > 2;
	case '[':
	case '{':
		return !empty_container(raw);
	case '0':
	case 't':
		return true;
	default:
		return false;
	}
}

int bg_cmd_validate_task(const struct bg_cmd *cmd)
{
	struct bg_str c = cmd->content;
	bool ok = true;

	if (cmd->action == BG_ACTION_ASK_AGENT) {
		switch (bg_json_type(c)) {
		case '"':
			ok = !bg_json_str_blank(c);
			break;
		case '[':
			ok = !empty_container(c);
			break;
		case '{':
			ok = true;
			break;
		default:
			ok = false;
			break;
		}
	} else if (cmd->action == BG_ACTION_RESUME) {
		ok = cmd->status.len > 0 || content_nonempty(c);
	}
	return ok ? 0 : BG_CMD_EINVALID_CONTENT;
}

/* ---- cold path ----------------------------------------------------------- */

/* Absent, null or a string. */
static bool opt_string(const json_t *body, const char *key)
{
	const json_t *v = json_object_get(body, key);

	return v == NULL || json_is_null(v) || json_is_string(v);
}

static bool req_string(const json_t *body, const char *key)
{
	const json_t *v = json_object_get(body, key);

	return json_is_string(v) && json_string_length(v) > 0;
}

/* Absent, null, or a string usable as an id (no control character). */
static bool id_string(const json_t *body, const char *key)
{
	const json_t *v = json_object_get(body, key);

	return !json_is_string(v) ||
	       !has_control((struct bg_str){ json_string_value(v),
					     json_string_length(v) });
}

static bool check_cancel(const json_t *body)
{
	const json_t *mode = json_object_get(body, "cancel_mode");
	const char *m = json_string_value(mode);

	return req_string(body, "target_message_id") &&
	       opt_string(body, "target_execution_id") &&
	       opt_string(body, "target_worker_id") &&
	       opt_string(body, "reason") && opt_string(body, "requested_by") &&
	       (mode == NULL || json_is_null(mode) ||
		(m && (strcmp(m, "graceful") == 0 || strcmp(m, "force") == 0)));
}

static int check_body(enum bg_action action, const json_t *body)
{
	const json_t *force = json_object_get(body, "force");
	bool ok = true, ids = true;

	switch (action) {
	case BG_ACTION_CANCEL_TASK:
		ok = check_cancel(body);
		ids = id_string(body, "target_message_id") &&
		      id_string(body, "target_execution_id") &&
		      id_string(body, "target_worker_id");
		break;
	case BG_ACTION_RELOAD_PLUGINS:
		ok = req_string(body, "reload_id") &&
		     opt_string(body, "reason");
		ids = id_string(body, "reload_id");
		break;
	case BG_ACTION_SUSPEND_WORKER:
		ok = opt_string(body, "reason");
		break;
	case BG_ACTION_EVICT_WORKER:
		ok = opt_string(body, "reason") &&
		     (force == NULL || json_is_null(force) ||
		      json_is_boolean(force));
		break;
	default:
		break;
	}
	return !ok ? BG_CMD_EINVALID_BODY : !ids ? BG_CMD_EINVALID_ID : 0;
}

int bg_cmd_parse_full(const char *data, size_t len, struct json_t **out,
		      const char **error_code)
{
	struct bg_cmd cmd;
	json_error_t jerr;
	json_t *root = NULL, *body;
	int rc = bg_cmd_scan(data, len, &cmd);
	enum bg_action action = cmd.action;

	if (rc == 0)
		rc = bg_cmd_validate_task(&cmd);
	bg_cmd_free(&cmd);
	if (rc == 0) {
		root = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
		rc = root ? 0 : BG_CMD_EINVALID_JSON; /* e.g. numbers > int64 */
	}
	if (rc == 0) {
		body = json_object_get(root, "body");
		rc = check_body(action, json_is_object(body) ? body : NULL);
	}
	if (rc) {
		json_decref(root);
		root = NULL;
	}
	*out = root;
	*error_code = rc ? bg_cmd_error_code(rc) : NULL;
	return rc;
}

/* ---- error strings ------------------------------------------------------- */

static const struct {
	int rc;
	const char *code;
	const char *text;
} errors[] = {
	{ BG_CMD_EINVALID_JSON, "invalid_json",
	  "the data field is not a JSON object with object header and body" },
	{ BG_CMD_EUNKNOWN_ACTION, "unknown_action",
	  "action_type is missing or is not a supported action" },
	{ BG_CMD_EMISSING_HEADER, "missing_header",
	  "the header object, header.session_id or header.trace_id is missing" },
	{ BG_CMD_EINVALID_CONTENT, "invalid_content",
	  "the task content is empty (RESUME: and its status is empty too)" },
	{ BG_CMD_EINVALID_BODY, "invalid_body",
	  "a required body key of the command is missing or has a wrong value" },
	{ BG_CMD_EINVALID_ID, "invalid_id",
	  "an id (a header string other than user_name, or a cancel or "
	  "reload target) contains U+0000 or another control character" },
	{ -ENOMEM, "out_of_memory", "out of memory while reading the command" },
};

const char *bg_cmd_error_code(int rc)
{
	for (size_t k = 0; k < sizeof errors / sizeof errors[0]; k++)
		if (errors[k].rc == rc)
			return errors[k].code;
	return "internal";
}

const char *bg_cmd_error_text(int rc)
{
	for (size_t k = 0; k < sizeof errors / sizeof errors[0]; k++)
		if (errors[k].rc == rc)
			return errors[k].text;
	return rc == 0 ? "no error"
		       : "internal error while reading the command";
}
