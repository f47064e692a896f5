"""The agent-config snapshot bygated writes into an execution record when
it runs it (WIRE 8.2, 6.2; wire/audit.h): agent_configs_version (the
loaded handlers' generation) and agent_config_audit, the reference's JSON
projection, naming the handler that runs it; no pickled snapshot blob."""

import pathlib

from harness import wait_until
import pyclient as pc

AGENTS = pathlib.Path(__file__).resolve().parent / "agents"
AUDIT_KEYS = {"version", "target_agent_type", "target_agent_registered",
              "config_count", "agent_ids", "target_agent_config", "configs",
              "snapshot_hash"}


def finished(c, keys, s, m):
    return wait_until(lambda: (lambda r: r if r.get("status") == "COMPLETED"
                               else None)(pc.record(c, keys, s, m) or {}),
                      20, what="%s completed" % m)


def test_a_plugin_task_records_its_agent_config_snapshot(h):
    d = h.start_bygated()
    c = h.client()
    mid, eid = pc.send(c, h.keys, "s-aud", "echo", "hi")
    rec = finished(c, h.keys, "s-aud", mid)
    audit = rec["agent_config_audit"]
    assert set(audit) == AUDIT_KEYS
    assert rec["agent_configs_version"] == audit["version"]
    assert (audit["target_agent_type"], audit["agent_ids"],
            audit["config_count"]) == ("echo", ["echo"], 1)
    cfg = audit["target_agent_config"]
    assert (cfg["agent_id"], cfg["handler"]) == ("echo", "plugin")
    assert cfg["plugin"] == d.config["agent_types"][0]["plugin"]
    assert audit["configs"] == [cfg]
    assert audit["snapshot_hash"].startswith("sha256:")
    assert c.call("EXISTS", "byai_gateway:agent_configs_snapshot:" + eid,
                  "byai_gateway:v2:agent_configs_snapshot:" + eid) == 0


def test_an_exec_task_names_its_command(h):
    h.start_bygated({"agent_types": [
        {"name": "py", "handler": "exec",
         "command": "python3 %s" % (AGENTS / "testagent.py")}]})
    c = h.client()
    mid, _ = pc.send(c, h.keys, "s-aud2", "py", "noop")
    cfg = finished(c, h.keys, "s-aud2", mid)["agent_config_audit"][
        "target_agent_config"]
    assert cfg["handler"] == "exec" and cfg["mode"] == "persistent"
    assert cfg["command"].endswith("testagent.py")
