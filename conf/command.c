/* conf/command.c - the `command` of an exec agent type split into the
 * program's argv, with the quoting rules of bg_config_command_argv. The
 * same split validates the file (bygated -t) and builds the CONFIG record,
 * so a command that loads is the command that runs. */
#include "conf/table.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Unquoted characters that only mean something to a shell. */
#define SHELL_CHARS "|&;<>()$`"

struct splitter {
	const char *s; /* next character */
	char *word;    /* the word being built */
	size_t len;
	json_t *argv;
	char *err;
	size_t errlen;
};

static int fail(struct splitter *x, const char *msg)
{
	if (x->err && x->errlen)
		snprintf(x->err, x->errlen, "%s", msg);
	return -1;
}

static void put(struct splitter *x, char ch)
{
	x->word[x->len++] = ch;
}

/* The quoted part starting at x->s (on the quote). */
static int quoted(struct splitter *x)
{
	char q = *x->s++;
	for (; *x->s != q; x->s++) {
		if (*x->s == '\0')
			return fail(x, q == '\''
					       ? "unterminated '...' quote"
					       : "unterminated \"...\" quote");
		if (q == '"' && *x->s == '\\' &&
		    (x->s[1] == '"' || x->s[1] == '\\'))
			x->s++;
		put(x, *x->s);
	}
	x->s++;
	return 0;
}

/* One word starting at x->s (not a blank), appended to x->argv. */
static int word(struct splitter *x)
{
	x->len = 0;
	while (*x->s && *x->s != ' ' && *x->s != '\t') {
		if (*x->s == '\'' || *x->s == '"') {
			if (quoted(x))
				return -1;
			continue;
		}
		if (strchr(SHELL_CHARS, *x->s))
			return fail(x, "unquoted shell syntax (| & ; < > ( ) "
				       "$ `): the command is not run by a "
				       "shell; write command = \"sh -c '...'\" "
				       "to use one");
		if (*x->s == '\\' && x->s[1])
			x->s++;
		put(x, *x->s++);
	}
	x->word[x->len] = '\0';
	json_t *w = json_string(x->word);
	if (w == NULL)
		return fail(x, "not valid UTF-8");
	return json_array_append_new(x->argv, w) ? fail(x, "out of memory") : 0;
}

int bg_config_command_argv(const char *command, char **argv_json, char *err,
			   size_t errlen)
{
	struct splitter x = { .s = command, .err = err, .errlen = errlen };
	*argv_json = NULL;
	if (err && errlen)
		err[0] = '\0';
	x.word = malloc(strlen(command) + 1);
	x.argv = json_array();
	int rc = x.word && x.argv ? 0 : -1;
	while (rc == 0 && *x.s) {
		if (*x.s == ' ' || *x.s == '\t')
			x.s++;
		else
			rc = word(&x);
	}
	if (rc == 0 && json_array_size(x.argv) == 0)
		rc = fail(&x, "no program given");
	if (rc == 0)
		*argv_json = json_dumps(x.argv, JSON_COMPACT);
	if (rc == 0 && *argv_json == NULL)
		rc = -1;
	json_decref(x.argv);
	free(x.word);
	return rc;
}
