/* wire/audit.c - the agent_config_audit projection (audit.h, WIRE 8.2). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "wire/audit.h"
#include "wire/json.h"

static int config_of(struct bg_buf *c, const struct bg_audit_handler *h)
{
	int rc = bg_buf_puts(c, "{\"agent_id\":");
	if (!rc)
		rc = bg_json_escape(c, h->agent_type.p, h->agent_type.len);
	if (!rc)
		rc = bg_buf_puts(c, ",\"registered\":true,\"handler\":");
	if (!rc)
		rc = bg_json_escape(c, h->kind.p ? h->kind.p : "", h->kind.len);
	if (!rc && h->plugin.len) {
		rc = bg_buf_puts(c, ",\"plugin\":");
		if (!rc)
			rc = bg_json_escape(c, h->plugin.p, h->plugin.len);
	}
	if (!rc && h->command.len) {
		rc = bg_buf_puts(c, ",\"command\":");
		if (!rc)
			rc = bg_json_escape(c, h->command.p, h->command.len);
		if (!rc && h->mode.len) {
			rc = bg_buf_puts(c, ",\"mode\":");
			if (!rc)
				rc = bg_json_escape(c, h->mode.p, h->mode.len);
		}
	}
	if (!rc)
		rc = bg_buf_printf(c, ",\"generation\":%u}", h->generation);
	return rc;
}

static int sha256_hex(char out[65], const char *p, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return -ENOMEM;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int bg_audit_build(struct bg_buf *out, const struct bg_audit_handler *h)
{
	if (h->agent_type.len == 0)
		return -EINVAL;
	struct bg_buf c = { 0 };
	char hex[65];
	size_t mark = out->len;
	int rc = config_of(&c, h);
	if (!rc)
		rc = sha256_hex(hex, c.p, c.len);
	if (!rc)
		rc = bg_buf_printf(out,
				   "{\"version\":%u,\"target_agent_type\":",
				   h->generation);
	if (!rc)
		rc = bg_json_escape(out, h->agent_type.p, h->agent_type.len);
	if (!rc)
		rc = bg_buf_puts(out, ",\"target_agent_registered\":true,"
				      "\"config_count\":1,\"agent_ids\":[");
	if (!rc)
		rc = bg_json_escape(out, h->agent_type.p, h->agent_type.len);
	if (!rc)
		rc = bg_buf_puts(out, "],\"target_agent_config\":");
	if (!rc)
		rc = bg_buf_append(out, c.p, c.len);
	if (!rc)
		rc = bg_buf_puts(out, ",\"configs\":[");
	if (!rc)
		rc = bg_buf_append(out, c.p, c.len);
	if (!rc)
		rc = bg_buf_printf(out, "],\"snapshot_hash\":\"sha256:%s\"}",
				   hex);
	bg_buf_free(&c);
	if (rc) {
		out->len = mark;
		if (out->p)
			out->p[mark] = '\0';
	}
	return rc;
}

int bg_audit_splice(struct bg_buf *out, struct bg_str record,
		    struct bg_str audit, uint32_t version)
{
	char ver[16];
	snprintf(ver, sizeof(ver), "%u", version);
	struct bg_json_edit e[2] = {
		{ "agent_configs_version", bg_str_c(ver), BG_JSON_SET },
		{ "agent_config_audit", audit, BG_JSON_SET },
	};
	return bg_json_obj_edit(out, record, e, 2);
}
