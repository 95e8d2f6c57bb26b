"""Fixtures shared by every test: settings pointed at temporary folders, real instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from hive_pipelines.settings import HiveSettings, get_settings
from hive_pipelines.transforms.registry import REGISTRY, TransformRegistry, load_transform_modules

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def hive_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """HIVE_ settings pointing at a fresh var folder and an empty flows folder under tmp_path.

    The variables reach subprocesses too (step processes, `hive`, `dagster dev`).
    """
    flows = tmp_path / "flows"
    flows.mkdir()
    monkeypatch.setenv("HIVE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HIVE_FLOWS_DIR", str(flows))
    monkeypatch.setenv("HIVE_TRANSFORM_MODULES", '["hive_pipelines_tests.support_transforms"]')
    get_settings.cache_clear()
    yield flows
    get_settings.cache_clear()


@pytest.fixture
def settings(hive_env: Path) -> HiveSettings:
    return get_settings()


@pytest.fixture
def registry(settings: HiveSettings) -> TransformRegistry:
    return load_transform_modules(settings.transform_modules)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real, persistent local instance (SQLite) in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as real_instance:
        yield real_instance


__all__ = ["FIXTURES", "PROJECT_DIR", "REGISTRY"]
