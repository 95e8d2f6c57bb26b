"""After pruning, the webserver still answers every query the registry assets' pages make.

Registry days are materialized on a real instance, some are pruned (files, registry runs and
so their materialization records), then a real `dagster-webserver` is asked, through the
GraphQL API the UI itself uses, for the asset list, each asset's partition statuses, its
materializations and its partition keys. No answer may carry an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import requests

from hive_pipelines.defs.registry.assets import ASSIGNMENTS, WORKER_DAYS
from hive_pipelines.defs.registry.definitions import build_registry_definitions
from hive_pipelines.defs.registry.prune import REGISTRY_JOB, prune
from hive_pipelines.registry.store import RegistryStore
from hive_pipelines.settings import get_settings
from hive_pipelines_tests.conftest import PROJECT_DIR
from hive_pipelines_tests.e2e.processes import (
    BIN,
    DagsterProcess,
    environment,
    free_port,
    make_home,
    wait_for,
)

pytestmark = pytest.mark.slow

ASSET_QUERY = """
query Asset($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(limit: 100) { partition runId }
      definition {
        partitionKeys
        partitionStats { numMaterialized numPartitions numFailed }
        assetPartitionStatuses {
          __typename
          ... on TimePartitionStatuses { ranges { startKey endKey status } }
        }
      }
    }
  }
  assetNodes { assetKey { path } }
}
"""


@pytest.fixture
def pruned_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, dict[str, str], list[str], list[str]]]:
    home = make_home(tmp_path)
    env = environment(home, tmp_path / "var", PROJECT_DIR / "flows", registry_retention_days="5")
    for key, value in env.items():
        if key.startswith("HIVE_") or key == "DAGSTER_HOME":
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    job = build_registry_definitions(settings).resolve_job_def(REGISTRY_JOB)
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(5)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for day in days:
            assert job.execute_in_process(instance=instance, partition_key=day).success
        # Two days on, the three oldest of the five are past a retention of 5 days.
        report = prune(instance, settings, now=time.time() + 2 * 86_400)
    yield home, env, days, report.partitions
    get_settings.cache_clear()


def test_registry_asset_pages_load_after_pruning(
    tmp_path: Path, pruned_registry: tuple[Path, dict[str, str], list[str], list[str]]
) -> None:
    _, env, days, pruned = pruned_registry
    assert sorted(pruned) == sorted(days[3:])
    store = RegistryStore(tmp_path / "var" / "registry")
    assert store.days(ASSIGNMENTS) == sorted(days[:3])

    port = free_port()
    args = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    server = DagsterProcess([*args, "-w", "workspace.yaml"], env, tmp_path / "web.log")
    try:
        wait_for(lambda: _answers(port), 180, "dagster-webserver to serve", server.tail)
        for asset in (ASSIGNMENTS, WORKER_DAYS):
            answer = _asset(port, asset)
            assert "errors" not in answer, answer
            data = answer["data"]["assetOrError"]
            assert data["__typename"] == "Asset", data
            materialized = {m["partition"] for m in data["assetMaterializations"]}
            assert materialized == set(days[:3]), (asset, materialized)
            definition = data["definition"]
            assert set(days[:3]) <= set(definition["partitionKeys"])
            assert definition["partitionStats"]["numMaterialized"] == 3
            ranges = definition["assetPartitionStatuses"]["ranges"]
            assert ranges and all(r["status"] == "MATERIALIZED" for r in ranges)
    finally:
        server.stop()


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok and (
            "Asset" in str(_asset(port, ASSIGNMENTS).get("data"))
        )
    except requests.RequestException:
        return False


def _asset(port: int, asset: str) -> dict:
    answer = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": ASSET_QUERY, "variables": {"key": {"path": [asset]}}},
        timeout=60,
    )
    result: dict = answer.json()
    return result
