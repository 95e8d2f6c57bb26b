"""Flow schedules in the project's definitions, and the host and schedule checks of a flow."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from hive_pipelines.flowgraph.validate import validate_flow_file
from hive_pipelines.settings import get_settings
from hive_pipelines.transforms.registry import load_transform_modules
from hive_pipelines_tests.defs.host.support import NUMBERS_FLOW, project_host, use_settings
from hive_pipelines_tests.defs.host.support import write_flow as write_flow_text

HOURLY = """
name: hourly
schedule: {cron: "0 * * * *", timezone: "Europe/Paris"%s}
nodes:
  - id: numbers
    transform: make_rows
"""


def write_hourly(flows: Path, extra: str = "") -> None:
    write_flow_text(flows, HOURLY % extra)


def hourly_schedule() -> dg.ScheduleDefinition:
    return project_host().definitions.get_schedule_def("hourly_schedule")


def problems(flows: Path, text: str) -> list[tuple[str, str]]:
    """(kind, message) of each problem of one flow file."""
    path = write_flow_text(flows, text)
    settings = get_settings()
    report = validate_flow_file(path, load_transform_modules(settings.transform_modules), settings)
    return [(problem.kind, problem.message) for problem in report.problems]


def test_flow_schedule_runs_its_job_on_its_cron_in_its_time_zone(hive_env: Path) -> None:
    write_hourly(hive_env)

    schedule = hourly_schedule()

    assert schedule.name == "hourly_schedule"
    assert schedule.job_name == "hourly"
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.execution_timezone == "Europe/Paris"
    assert schedule.tags == {"hive/source": "schedule", "hive/flow": "hourly"}


def test_only_flows_with_a_schedule_get_one(hive_env: Path) -> None:
    write_hourly(hive_env)
    write_flow_text(hive_env, NUMBERS_FLOW)

    definitions = project_host().definitions

    flow_schedules = [s.name for s in definitions.schedules or [] if "hive/flow" in s.tags]
    assert flow_schedules == ["hourly_schedule"]


def test_schedule_is_stopped_by_default_under_the_development_profile(hive_env: Path) -> None:
    write_hourly(hive_env)

    assert get_settings().profile == "development"
    assert hourly_schedule().default_status == dg.DefaultScheduleStatus.STOPPED


def test_schedule_is_running_by_default_under_the_production_profile(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, profile="production")
    write_hourly(hive_env)

    assert hourly_schedule().default_status == dg.DefaultScheduleStatus.RUNNING


def test_enabled_false_keeps_the_schedule_stopped_under_production(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, profile="production")
    write_hourly(hive_env, ", enabled: false")

    assert hourly_schedule().default_status == dg.DefaultScheduleStatus.STOPPED


def test_enabled_true_runs_the_schedule_under_development(hive_env: Path) -> None:
    write_hourly(hive_env, ", enabled: true")

    assert hourly_schedule().default_status == dg.DefaultScheduleStatus.RUNNING


def test_schedules_on_by_default_setting_overrides_the_profile(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, schedules_on_by_default="true")
    write_hourly(hive_env)

    assert hourly_schedule().default_status == dg.DefaultScheduleStatus.RUNNING


def test_cron_with_six_fields_is_a_schedule_problem(hive_env: Path) -> None:
    text = (HOURLY % "").replace('"0 * * * *"', '"0 0 * * * *"')

    found = problems(hive_env, text)

    assert [kind for kind, _ in found] == ["schedule"]
    assert "five fields" in found[0][1]


def test_cron_with_a_minute_out_of_range_is_a_schedule_problem(hive_env: Path) -> None:
    text = (HOURLY % "").replace('"0 * * * *"', '"61 * * * *"')

    found = problems(hive_env, text)

    assert [kind for kind, _ in found] == ["schedule"]
    assert "'61 * * * *'" in found[0][1]


def test_unknown_time_zone_is_a_schedule_problem(hive_env: Path) -> None:
    text = (HOURLY % "").replace("Europe/Paris", "Mars/Olympus_Mons")

    found = problems(hive_env, text)

    assert found == [
        ("schedule", "schedule.timezone 'Mars/Olympus_Mons' is not a known time zone.")
    ]


def test_flow_with_a_bad_cron_gets_no_schedule_and_the_others_still_load(
    hive_env: Path,
) -> None:
    write_flow_text(hive_env, (HOURLY % "").replace('"0 * * * *"', '"61 * * * *"'))
    write_flow_text(hive_env, NUMBERS_FLOW)

    definitions = project_host().definitions

    assert not [s for s in definitions.schedules or [] if "hive/flow" in s.tags]
    assert definitions.get_job_def("numbers").tags.get("hive/invalid") is None
    assert definitions.get_job_def("hourly").tags.get("hive/invalid") == "true"


def test_input_node_with_an_upstream_is_a_host_problem(hive_env: Path) -> None:
    text = """
    name: fed
    host: {input_node: copy}
    nodes:
      - id: raw
        transform: read_table
        params: {root: inbox, path: x.csv}
      - id: copy
        transform: select_columns
        upstream: [raw]
        params: {columns: [a]}
    """

    found = problems(hive_env, text)

    assert found == [("host", "host.input_node 'copy' must be a source node (no upstream).")]


def test_input_node_that_is_not_a_node_is_a_host_problem(hive_env: Path) -> None:
    text = """
    name: fed
    host: {input_node: ghost}
    nodes:
      - id: raw
        transform: read_table
        params: {root: inbox, path: x.csv}
    """

    found = problems(hive_env, text)

    assert found == [("host", "host.input_node 'ghost' is not a node of this flow.")]


def test_input_node_whose_transform_takes_no_path_is_a_host_problem(hive_env: Path) -> None:
    text = """
    name: fed
    host: {input_node: numbers}
    nodes:
      - id: numbers
        transform: make_rows
    """

    found = problems(hive_env, text)

    assert [kind for kind, _ in found] == ["host", "host"]
    assert "no param 'path'" in found[0][1]
    assert "no param 'root'" in found[1][1]


def test_flow_named_requests_is_reserved_for_the_inbox(hive_env: Path) -> None:
    text = NUMBERS_FLOW.replace("name: numbers", "name: requests")

    found = problems(hive_env, text)

    assert [kind for kind, _ in found] == ["schema"]
    assert "reserved" in found[0][1]
