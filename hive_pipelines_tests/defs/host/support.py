"""Helpers for the host's sensor tests: flows, deliveries, ticks and real runs.

Every tick evaluates the real inbox sensor against a real (SQLite) instance; every run is a
real execution of the job the run request names, with the request's config and tags.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from hive_pipelines.defs.flows.definitions import build_flow_definitions, flow_reports
from hive_pipelines.defs.host.definitions import reset_circuit_job
from hive_pipelines.defs.host.sensors import build_inbox_sensor
from hive_pipelines.host.tick import HostCursor
from hive_pipelines.settings import HiveSettings, get_settings
from hive_pipelines.transforms.registry import load_transform_modules
from hive_pipelines_tests.conftest import FIXTURES, PROJECT_DIR

GHARCHIVE = FIXTURES / "gharchive"
HOUR_0 = GHARCHIVE / "2015-01-01-0.json.gz"
HOUR_1 = GHARCHIVE / "2015-01-01-1.json.gz"
GITHUB_ACTIVITY = PROJECT_DIR / "flows" / "github_activity.yaml"

# A one-node flow fed by data files: a .jsonl file of JSON objects succeeds, anything else
# fails its run at once (no retries), which is how the circuit tests make real failures.
DROPS_FLOW = """
name: drops
defaults: {retry: {max_retries: 0}}
host: {input_node: raw}
nodes:
  - id: raw
    transform: read_table
    params: {root: inbox, path: none.jsonl, format: jsonl}
"""

# A flow that takes no files: only requests with params can start it.
NUMBERS_FLOW = """
name: numbers
defaults: {retry: {max_retries: 0}}
nodes:
  - id: numbers
    transform: make_rows
    params: {rows: 3}
"""

GOOD_LINES = b'{"a": 1}\n{"a": 2}\n'
BAD_LINES = b"this is not JSON lines\n"


def write_flow(flows: Path, text: str) -> Path:
    document = textwrap.dedent(text).lstrip("\n")
    name = document.split("\n", 1)[0].removeprefix("name:").strip()
    path = flows / f"{name}.yaml"
    path.write_text(document, encoding="utf-8")
    return path


def use_settings(monkeypatch: pytest.MonkeyPatch, **values: object) -> HiveSettings:
    """Set HIVE_<NAME> variables and return the settings read afresh from them."""
    for name, value in values.items():
        monkeypatch.setenv(f"HIVE_{name.upper()}", str(value))
    get_settings.cache_clear()
    return get_settings()


def inbox_dir() -> Path:
    return get_settings().resolved_inbox_dir


def deliver(flow: str, name: str, data: bytes) -> Path:
    """Drop a file into the inbox folder of `flow` (or `requests`), as a producer would."""
    folder = inbox_dir() / flow
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def deliver_request(name: str, request: dict[str, Any]) -> Path:
    return deliver("requests", name, json.dumps(request).encode())


def copy_in(flow: str, source: Path, name: str | None = None) -> Path:
    folder = inbox_dir() / flow
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, folder / (name or source.name)))


def arrive_in_order(flow: str, names: list[str], data: Callable[[str], bytes]) -> list[Path]:
    """Create files one after the other, so each has a later inode change time."""
    paths = []
    for name in names:
        paths.append(deliver(flow, name, data(name)))
        time.sleep(0.01)
    return paths


@dataclass
class Clock:
    """A clock the test sets; the sensor reads it instead of the time of day."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class HostDefs:
    definitions: dg.Definitions
    sensor: dg.SensorDefinition


def project_host() -> HostDefs:
    """The project's own definitions (hive_pipelines.definitions.defs), read afresh."""
    from hive_pipelines.definitions import defs

    get_settings.cache_clear()
    definitions = defs()
    return HostDefs(definitions, definitions.get_sensor_def("inbox_sensor"))


def host_with_clock(clock: Callable[[], float]) -> HostDefs:
    """The flows' jobs and an inbox sensor built by build_inbox_sensor on `clock`."""
    settings = get_settings()
    registry = load_transform_modules(settings.transform_modules)
    reports = flow_reports(settings)
    flows = build_flow_definitions(settings, reports)
    plans = {r.plan.name: r.plan for r in reports if r.plan is not None}
    jobs = [job for job in flows.jobs or [] if isinstance(job, dg.JobDefinition)]
    sensor = build_inbox_sensor(plans, jobs, settings, registry, clock=clock)
    return HostDefs(dg.Definitions(jobs=[*jobs, reset_circuit_job], sensors=[sensor]), sensor)


@dataclass
class Tick:
    requests: list[dg.RunRequest]
    skip: str | None
    cursor: str | None

    @property
    def state(self) -> HostCursor:
        return HostCursor.parse(self.cursor)

    @property
    def keys(self) -> list[str]:
        return [request.run_key or "" for request in self.requests]

    @property
    def paths(self) -> list[str]:
        return [request.tags["hive/event_path"] for request in self.requests]


def tick(host: HostDefs, instance: dg.DagsterInstance, cursor: str | None = None) -> Tick:
    """One evaluation of the inbox sensor, as the daemon would run it."""
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=host.definitions
    )
    data = host.sensor.evaluate_tick(context)
    return Tick(list(data.run_requests or []), data.skip_message, data.cursor)


def execute(
    host: HostDefs, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Run the job a run request names, with its config and tags, on the instance."""
    assert request.job_name is not None
    job = host.definitions.get_job_def(request.job_name)
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        tags=dict(request.tags),
        raise_on_error=False,
    )


def reset_by_hand(instance: dg.DagsterInstance, flow: str) -> dg.ExecuteInProcessResult:
    return reset_circuit_job.execute_in_process(
        run_config={"ops": {"reset": {"config": {"flow": flow}}}}, instance=instance
    )


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def files_under(folder: Path) -> list[str]:
    """Every file below `folder`, as sorted relative paths."""
    if not folder.is_dir():
        return []
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() or path.is_symlink()
    )


def quarantined(stream: str) -> list[tuple[Path, dict[str, Any]]]:
    """The quarantined events of a stream, each with its reason record."""
    folder = inbox_dir() / ".quarantine" / stream
    if not folder.is_dir():
        return []
    events = sorted(p for p in folder.iterdir() if not p.name.endswith(".reason.json"))
    return [(p, read_json(p.with_name(p.name + ".reason.json"))) for p in events]
