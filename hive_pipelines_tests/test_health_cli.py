"""`hive health` as a real subprocess on a real DAGSTER_HOME: a table or JSON, exit 0/1/2.

One healthy home serves every test: a prune run, fresh daemon heartbeats, an inbox folder and
a daemon-like process (with a memory limit no process reaches, whatever else runs here).
Each test then forces a status with HIVE_HEALTH__<CHECK>__WARN/FAIL in the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster._daemon.types import DaemonHeartbeat

from hive_pipelines.defs.registry.prune import build_prune_job
from hive_pipelines.health.checks import CHECK_NAMES
from hive_pipelines.settings import HiveSettings
from hive_pipelines_tests.health import daemon_like_process, fresh_instance

HIVE = Path(sys.executable).parent / "hive"
TIB = 1 << 40


@pytest.fixture(scope="module")
def healthy_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("health_cli")
    home, var, flows = root / "dagster_home", root / "var", root / "flows"
    flows.mkdir()
    settings = HiveSettings(var_dir=var, flows_dir=flows)
    settings.resolved_inbox_dir.mkdir(parents=True)
    with fresh_instance(home) as instance:
        assert build_prune_job(settings).execute_in_process(instance=instance).success
        for daemon_type in ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"):
            instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), daemon_type, "d-1"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HIVE_") and key != "DAGSTER_HOME"
    }
    env.update(
        DAGSTER_HOME=str(home),
        HIVE_VAR_DIR=str(var),
        HIVE_FLOWS_DIR=str(flows),
        HIVE_HEALTH__DAEMON_RSS_BYTES__WARN=str(TIB),
        HIVE_HEALTH__DAEMON_RSS_BYTES__FAIL=str(2 * TIB),
    )
    with daemon_like_process():
        yield env


def hive_health(
    env: dict[str, str], *args: str, **overrides: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [str(HIVE), "health", *args],
        env={**env, **overrides},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, time.monotonic() - started


def test_healthy_prints_a_table_and_exits_0_within_seconds(healthy_env: dict[str, str]) -> None:
    result, seconds = hive_health(healthy_env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "overall: pass"
    rows = [line.split()[:2] for line in lines[:-1]]
    assert rows == [["pass", name] for name in CHECK_NAMES]
    assert "The last successful pruning ended 0.0 h ago." in result.stdout
    assert seconds < 20  # mostly Python importing Dagster; a loaded test machine is slower


def test_a_warning_exits_1(healthy_env: dict[str, str]) -> None:
    result, _ = hive_health(healthy_env, HIVE_HEALTH__RUNS_IN_PROGRESS__WARN="0")

    assert result.returncode == 1, result.stdout + result.stderr
    [row] = [line for line in result.stdout.splitlines() if " runs_in_progress " in line]
    assert row.split()[:3] == ["warn", "runs_in_progress", "0"]
    assert result.stdout.splitlines()[-1] == "overall: warn"


def test_a_failure_exits_2_and_json_parses(healthy_env: dict[str, str]) -> None:
    result, _ = hive_health(
        healthy_env,
        "--json",
        HIVE_HEALTH__FREE_DISK_FRACTION__WARN="1.0",
        HIVE_HEALTH__FREE_DISK_FRACTION__FAIL="1.0",
        HIVE_HEALTH__OPEN_CIRCUITS__WARN="0",
    )

    assert result.returncode == 2, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "fail"
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == CHECK_NAMES
    assert set(checks["free_disk"]) == {
        "name",
        "status",
        "value",
        "threshold",
        "message",
        "subject",
        "applicable",
    }
    assert checks["free_disk"]["status"] == "fail"
    assert checks["free_disk"]["threshold"] == "warn <= 1, fail <= 1"
    assert 0 < checks["free_disk"]["value"] < 1
    assert checks["open_circuits"]["status"] == "warn"
    assert {c["status"] for n, c in checks.items() if n not in {"free_disk", "open_circuits"}} == {
        "pass"
    }
