/* wire/audit.h - bygate's agent-config snapshot of an execution (WIRE
 * 8.2): the JSON projection `agent_config_audit` the reference writes into
 * the execution record for the dashboard, built from what bygate knows
 * of the agent type that runs it (its handler and its generation), and
 * the record edit that adds it. bygate writes no pickled snapshot blob
 * ("bygate decisions" 11). Pure: no Redis, no clock. */
#ifndef BG_WIRE_AUDIT_H
#define BG_WIRE_AUDIT_H

#include <stdint.h>

#include "common/buf.h"

/* What runs an agent type. */
struct bg_audit_handler {
	struct bg_str agent_type;
	struct bg_str kind;    /* "plugin" or "exec" */
	struct bg_str plugin;  /* plugin: the .so path, else empty */
	struct bg_str command; /* exec: the program line, else empty */
	struct bg_str mode;    /* exec: "persistent" or "per_task" */
	uint32_t generation;   /* the loaded handlers' generation (reload) */
};

/* Append the audit object: {"version": generation, "target_agent_type",
 * "target_agent_registered": true, "config_count": 1, "agent_ids": [T],
 * "target_agent_config": C, "configs": [C], "snapshot_hash":
 * "sha256:<hex of C's JSON>"} with C = {"agent_id": T, "registered":
 * true, "handler", "plugin" | "command" + "mode", "generation"}.
 * 0, -EINVAL (no agent type), -ENOMEM. */
int bg_audit_build(struct bg_buf *out, const struct bg_audit_handler *h);

/* Append a copy of the execution record with agent_configs_version =
 * version and agent_config_audit = audit (a bg_audit_build object, built
 * once and reused) (WIRE 6.2). 0, -EINVAL, -ENOMEM; out is unchanged on
 * error. */
int bg_audit_splice(struct bg_buf *out, struct bg_str record,
		    struct bg_str audit, uint32_t version);

#endif
