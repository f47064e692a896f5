"""A representative subset of the end-to-end, flow, control and recovery
tests, run unchanged on a private 3-master Redis Cluster with v2 keys
(h.use_cluster(); `make test-cluster` runs all of them there,
docs/cluster.md): the reference layout of an echo task, 1,000 tasks in
order, a call and its callback, the planner flow, a fan-out of 10 and its
join, ask_user and the reply, a graceful cancel, kill -9 mid-task, the
crash points of the finish, an unknown EXEC outcome, a dead peer's entries
reclaimed, two concurrent retries, a dead letter requeued, a manual
trigger fire, a bygated killed after a fire's claim, a webhook's replayed
idempotency key and a point of the fleet's metrics history."""

import test_agent_flows as flows
import test_agent_flows_python as pyflows
import test_control as control
import test_metrics_history as history
import test_queues as queues
import test_recovery as recovery
import test_task_path as task_path
import test_triggers as triggers
import test_webhooks as webhooks

CASES = [
    task_path.test_echo_task_streams_events_in_the_reference_layout,
    task_path.test_1000_tasks_over_3_sessions_complete_once_in_order,
    task_path.test_finished_message_added_again_is_acked_not_run,
    flows.test_a_calls_b_and_b_resumes_a_exactly_once,
    pyflows.test_persistent_planner_calls_researcher_then_writer_and_quotes_it,
    flows.test_fan_out_of_10_joins_once_with_every_result,
    flows.test_ask_user_round_trip_through_bygate_reply,
    control.test_graceful_cancel_reaches_the_handler_and_ends_cancelled,
    control.test_a_cancelled_sub_agent_calls_back_cancelled,
    recovery.test_kill_9_mid_task_the_restart_reruns_it_once,
    recovery.test_crash_after_the_journal_write_before_exec_recovers_once,
    recovery.test_crash_after_exec_before_the_journal_delete_recovers_once,
    recovery.test_exec_reply_lost_with_the_connection_is_resolved_once,
    recovery.test_a_dead_peers_entries_are_reclaimed_after_its_lease_expires,
    queues.test_two_concurrent_retries_run_the_task_once,
    queues.test_a_dead_letter_is_shown_requeued_once_and_purged,
    triggers.test_a_manual_fire_request_is_fired_once_by_the_fleet,
    triggers.test_a_bygated_killed_after_its_fire_script_loses_and_doubles_nothing,
    webhooks.test_replayed_idempotency_header_is_a_duplicate_and_creates_nothing,
    history.test_a_point_has_the_reference_keys_and_counts_outcomes,
]


def _on_cluster(case):
    def test(h):
        h.use_cluster()
        case(h)
    test.__name__ = "test_on_cluster_" + case.__name__[len("test_"):]
    test.__doc__ = "%s, on a Redis Cluster." % case.__name__
    if hasattr(case, "timeout"):
        test.timeout = case.timeout
    return test


for _case in CASES:
    _t = _on_cluster(_case)
    globals()[_t.__name__] = _t
del _case, _t
