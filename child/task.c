/* child/task.c - decoding of TASK records into the struct bg_task a plugin
 * reads, and the bg_task_* accessors of include/bygate/handler.h. Every
 * field is copied (NUL-terminated, its length kept: a field may hold 0
 * bytes) so the ring may be reused while the handler runs; the body is
 * parsed once, for bg_task_content(). */
#include "child/child.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/dirmake.h"

/* enum bg_task_attr -> enum bg_task_field */
static const int attr_field[] = {
	[BG_TASK_AGENT_TYPE] = BG_TF_AGENT_TYPE,
	[BG_TASK_ACTION] = BG_TF_ACTION,
	[BG_TASK_EXECUTION_ID] = BG_TF_EXECUTION_ID,
	[BG_TASK_MESSAGE_ID] = BG_TF_MESSAGE_ID,
	[BG_TASK_SESSION_ID] = BG_TF_SESSION_ID,
	[BG_TASK_TRACE_ID] = BG_TF_TRACE_ID,
	[BG_TASK_SOURCE_AGENT_TYPE] = BG_TF_SOURCE_AGENT_TYPE,
	[BG_TASK_PARENT_MESSAGE_ID] = BG_TF_PARENT_MESSAGE_ID,
	[BG_TASK_TASK_GROUP_ID] = BG_TF_TASK_GROUP_ID,
	[BG_TASK_USER_CODE] = BG_TF_USER_CODE,
	[BG_TASK_USER_NAME] = BG_TF_USER_NAME,
	[BG_TASK_WORKSPACE] = BG_TF_WORKSPACE,
	[BG_TASK_PRIVATE_DIR] = BG_TF_PRIVATE_DIR,
	[BG_TASK_TRACE_PARENT_SPAN_ID] = BG_TF_TRACE_PARENT_SPAN_ID,
	[BG_TASK_LANGFUSE_PARENT_OBSERVATION_ID] =
		BG_TF_LANGFUSE_PARENT_OBSERVATION_ID,
};

static int copy_fields(struct bg_task *t, const struct bg_str *v)
{
	size_t total = 0;
	for (int i = 0; i < BG_TF__COUNT; i++)
		total += v[i].len + 1;
	t->store = malloc(total);
	if (t->store == NULL)
		return -ENOMEM;
	char *w = t->store;
	for (int i = 0; i < BG_TF__COUNT; i++) {
		memcpy(w, v[i].p, v[i].len);
		w[v[i].len] = '\0';
		t->f[i] = w;
		t->n[i] = v[i].len;
		w += v[i].len + 1;
	}
	if (t->n[BG_TF_METADATA] == 0) {
		t->f[BG_TF_METADATA] = "{}";
		t->n[BG_TF_METADATA] = 2;
	}
	return 0;
}

/* body.content: a string's text (whole, U+0000 included), another
 * value's compact JSON, or "". */
static int extract_content(struct bg_task *t)
{
	json_t *c = json_object_get(t->body, "content");
	t->content = "";
	t->content_len = 0;
	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		t->content = json_string_value(c);
		t->content_len = json_string_length(c);
		return 0;
	}
	t->content_dump = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
	if (t->content_dump == NULL)
		return -ENOMEM;
	t->content = t->content_dump;
	t->content_len = strlen(t->content_dump);
	return 0;
}

int bg_child_task_parse(struct bg_task *t, const uint8_t *p, size_t len)
{
	struct bg_str v[BG_TF__COUNT];
	memset(t, 0, sizeof(*t));
	if (bg_rec_unpack(p, len, v, BG_TF__COUNT))
		return -EBADMSG;
	int rc = copy_fields(t, v);
	if (rc)
		return rc;
	t->body = json_loadb(v[BG_TF_BODY].p, v[BG_TF_BODY].len, JSON_ALLOW_NUL,
			     NULL);
	if (!json_is_object(t->body))
		return -EINVAL;
	return extract_content(t);
}

void bg_child_task_free(struct bg_task *t)
{
	json_decref(t->body);
	free(t->content_dump);
	free(t->store);
	memset(t, 0, sizeof(*t));
}

int bg_child_private_dir_make(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return 0;
	/* <session>/private is writable by every task of the session, so a
	 * hostile one may have swapped it for a symlink since bygated
	 * checked it: the directory is made in it and nowhere else (ELOOP).
	 * What lies above it is bygated's. */
	return bg_dir_make_below(path, 0700);
}

/* The private directory is made on the first ask for its path, so that a
 * handler that never asks costs no directory (bg_child_private_dir_make).
 * A failure leaves the path for the handler to find out, and a later call
 * tries again. */
const char *bg_task_get(const struct bg_task *task, enum bg_task_attr attr)
{
	if (task == NULL ||
	    (unsigned)attr >= sizeof(attr_field) / sizeof(attr_field[0]))
		return NULL;
	if (attr == BG_TASK_PRIVATE_DIR && !task->private_made &&
	    bg_child_private_dir_make(task->f[BG_TF_PRIVATE_DIR]) == 0)
		((struct bg_task *)task)->private_made = true; /* not const */
	return task->f[attr_field[attr]];
}

size_t bg_task_get_len(const struct bg_task *task, enum bg_task_attr attr)
{
	if (task == NULL ||
	    (unsigned)attr >= sizeof(attr_field) / sizeof(attr_field[0]))
		return 0;
	return task->n[attr_field[attr]];
}

const char *bg_task_content(const struct bg_task *task)
{
	return task->content;
}

size_t bg_task_content_len(const struct bg_task *task)
{
	return task->content_len;
}

const char *bg_task_body_json(const struct bg_task *task)
{
	return task->f[BG_TF_BODY];
}

const char *bg_task_metadata_json(const struct bg_task *task)
{
	return task->f[BG_TF_METADATA];
}

int bg_task_is_resumed(const struct bg_task *task)
{
	return strcmp(task->f[BG_TF_RESUMED], "1") == 0;
}

int bg_task_attempt(const struct bg_task *task)
{
	long v = strtol(task->f[BG_TF_ATTEMPT], NULL, 10);
	return v >= 1 && v <= 1000000 ? (int)v : 1;
}

const char *bg_task_group_results(const struct bg_task *task)
{
	return task ? task->f[BG_TF_GROUP_RESULTS] : "";
}

struct bg_str bg_child_task_agent_type(const uint8_t *p, size_t len)
{
	struct bg_str v[BG_TF__COUNT];
	if (bg_rec_unpack(p, len, v, BG_TF__COUNT))
		return (struct bg_str){ "", 0 };
	return v[BG_TF_AGENT_TYPE];
}
