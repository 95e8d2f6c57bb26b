"""event_done_sensor and event_failed_sensor after real runs of the inbox sensor's requests."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from hive_pipelines.settings import get_settings
from hive_pipelines_tests.defs.host.support import (
    BAD_LINES,
    DROPS_FLOW,
    GITHUB_ACTIVITY,
    HOUR_0,
    NUMBERS_FLOW,
    HostDefs,
    copy_in,
    deliver,
    deliver_request,
    execute,
    files_under,
    inbox_dir,
    project_host,
    read_json,
    reset_by_hand,
    tick,
    use_settings,
    write_flow,
)


@pytest.fixture(autouse=True)
def flows(hive_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_settings(monkeypatch, host_settle_seconds=0)
    write_flow(hive_env, DROPS_FLOW)
    write_flow(hive_env, NUMBERS_FLOW)
    (hive_env / GITHUB_ACTIVITY.name).write_bytes(GITHUB_ACTIVITY.read_bytes())
    return hive_env


def notify(
    host: HostDefs,
    instance: dg.DagsterInstance,
    sensor_name: str,
    run_id: str,
    event_type: dg.DagsterEventType,
) -> None:
    """Evaluate a run status sensor on the run's own RUN_SUCCESS or RUN_FAILURE event."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    [record] = instance.get_records_for_run(run_id, of_type=event_type).records
    event = record.event_log_entry.dagster_event
    assert event is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor_name, dagster_event=event, dagster_instance=instance, dagster_run=run
    )
    sensor = host.definitions.get_sensor_def(sensor_name)
    sensor(context)  # type: ignore[operator]


def test_done_sensor_moves_the_gharchive_hour_of_a_successful_run_to_processed(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    event = copy_in("github_activity", HOUR_0)
    [request] = tick(host, instance).requests
    result = execute(host, instance, request)
    assert result.success
    outputs = get_settings().resolved_output_dir / "github_activity" / result.run_id
    assert files_under(outputs), "the flow wrote its tables for the excerpt"

    notify(host, instance, "event_done_sensor", result.run_id, dg.DagsterEventType.RUN_SUCCESS)

    assert not event.exists()
    processed = inbox_dir() / ".processed" / "github_activity"
    assert files_under(processed) == ["2015-01-01-0.json.gz"]
    assert (processed / "2015-01-01-0.json.gz").read_bytes() == HOUR_0.read_bytes()


def test_done_sensor_moves_a_routed_request_to_processed(instance: dg.DagsterInstance) -> None:
    host = project_host()
    deliver_request("ask.json", {"id": "job-1", "flow": "numbers"})
    [request] = tick(host, instance).requests
    result = execute(host, instance, request)
    assert result.success

    notify(host, instance, "event_done_sensor", result.run_id, dg.DagsterEventType.RUN_SUCCESS)

    assert files_under(inbox_dir() / "numbers") == []
    assert files_under(inbox_dir() / ".processed") == ["numbers/job-1.request.json"]


def test_failed_sensor_records_the_run_id_and_error_and_leaves_the_event(
    instance: dg.DagsterInstance,
) -> None:
    host = project_host()
    event = deliver("drops", "bad.jsonl", BAD_LINES)
    [request] = tick(host, instance).requests
    result = execute(host, instance, request)
    assert not result.success

    notify(host, instance, "event_failed_sensor", result.run_id, dg.DagsterEventType.RUN_FAILURE)

    record = read_json(inbox_dir() / ".failed" / "drops" / "bad.jsonl.json")
    assert record["run_id"] == result.run_id
    assert record["event"] == "drops/bad.jsonl"
    assert record["event_key"] == request.run_key
    assert record["failed_nodes"] == ["raw"]
    assert "raw" in record["error"]
    assert isinstance(record["failed_at"], float)
    assert event.read_bytes() == BAD_LINES, "the event stays where it was"
    assert files_under(inbox_dir() / ".processed") == []


def test_status_sensors_leave_runs_without_an_event_alone(instance: dg.DagsterInstance) -> None:
    host = project_host()
    deliver("drops", "waiting.jsonl", BAD_LINES)
    done = reset_by_hand(instance, "drops")
    failed = host.definitions.get_job_def("drops").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert done.success
    assert not failed.success

    notify(host, instance, "event_done_sensor", done.run_id, dg.DagsterEventType.RUN_SUCCESS)
    notify(host, instance, "event_failed_sensor", failed.run_id, dg.DagsterEventType.RUN_FAILURE)

    assert files_under(inbox_dir()) == ["drops/waiting.jsonl"]


def test_failed_record_names_the_transform_error_after_the_retries(
    flows: Path, instance: dg.DagsterInstance
) -> None:
    # Regression: with retries, each node's error read "Exceeded max_retries of 1" instead
    # of the transform's own error.
    write_flow(
        flows,
        DROPS_FLOW.replace("drops", "retried").replace(
            "max_retries: 0", "max_retries: 1, delay_seconds: 0"
        ),
    )
    host = project_host()
    deliver("retried", "bad.jsonl", BAD_LINES)
    [request] = tick(host, instance).requests
    result = execute(host, instance, request)
    assert not result.success

    notify(host, instance, "event_failed_sensor", result.run_id, dg.DagsterEventType.RUN_FAILURE)

    record = read_json(inbox_dir() / ".failed" / "retried" / "bad.jsonl.json")
    error = record["node_errors"]["raw"]
    assert "Exceeded max_retries" not in error
    assert error.startswith("The node 'raw' of flow 'retried' failed in transform 'read_table':")
