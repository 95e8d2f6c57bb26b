"""Settings: HIVE_ variables, profiles, lazy reading and errors that name the setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hive_pipelines.settings import (
    PROJECT_DIR,
    HiveSettings,
    RetrySettings,
    SettingsInvalidError,
    get_settings,
    variable_name,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No HIVE_ variable from the outside, and no cached settings, in or after a test."""
    for name in list(os.environ):
        if name.upper().startswith("HIVE_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_defaults_without_variables() -> None:
    settings = HiveSettings()

    assert settings.profile == "development"
    assert settings.retry == RetrySettings(
        max_retries=1, delay_seconds=1.0, backoff="exponential", jitter="plus_minus"
    )
    assert settings.node_timeout_seconds == 600.0
    assert settings.max_run_seconds == 3600.0
    assert settings.flows_dir == PROJECT_DIR / "flows"
    assert settings.var_dir == PROJECT_DIR / "var"
    assert settings.resolved_output_dir == PROJECT_DIR / "var" / "outputs"
    assert settings.transform_modules == []
    assert settings.default_executor == "in_process"


def test_variables_override_defaults(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HIVE_FLOWS_DIR", str(tmp_path / "flows"))
    clean_env.setenv("HIVE_VAR_DIR", str(tmp_path / "var"))
    clean_env.setenv("HIVE_MAX_NODES", "12")
    clean_env.setenv("HIVE_NODE_TIMEOUT_SECONDS", "2.5")
    clean_env.setenv("HIVE_PARQUET_COMPRESSION", "zstd")
    clean_env.setenv("HIVE_TRANSFORM_MODULES", json.dumps(["pkg.one", "pkg.two"]))
    clean_env.setenv("HIVE_DATA_ROOTS", json.dumps({"raw": str(tmp_path / "raw")}))
    clean_env.setenv("HIVE_RETRY__MAX_RETRIES", "7")
    clean_env.setenv("HIVE_RETRY__BACKOFF", "linear")

    settings = HiveSettings()

    assert settings.flows_dir == tmp_path / "flows"
    assert settings.resolved_output_dir == tmp_path / "var" / "outputs"
    assert settings.max_nodes == 12
    assert settings.node_timeout_seconds == 2.5
    assert settings.parquet_compression == "zstd"
    assert settings.transform_modules == ["pkg.one", "pkg.two"]
    assert settings.resolved_data_roots["raw"] == tmp_path / "raw"
    # Nested: the two fields given change, the others keep their defaults.
    assert settings.retry == RetrySettings(
        max_retries=7, delay_seconds=1.0, backoff="linear", jitter="plus_minus"
    )


def test_get_settings_reads_on_first_use_and_caches(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HIVE_MAX_DEPTH", "9")
    first = get_settings()
    clean_env.setenv("HIVE_MAX_DEPTH", "10")

    assert get_settings() is first
    assert first.max_depth == 9
    get_settings.cache_clear()
    assert get_settings().max_depth == 10


def test_production_profile_changes_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HIVE_PROFILE", "production")

    settings = HiveSettings()

    assert settings.profile == "production"
    assert settings.retry == RetrySettings(
        max_retries=3, delay_seconds=10.0, backoff="exponential", jitter="plus_minus"
    )
    assert settings.node_timeout_seconds == 1800.0
    assert settings.max_run_seconds == 6 * 3600.0


def test_explicit_variables_beat_the_profile(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HIVE_PROFILE", "production")
    clean_env.setenv("HIVE_RETRY__MAX_RETRIES", "5")
    clean_env.setenv("HIVE_NODE_TIMEOUT_SECONDS", "42")

    settings = HiveSettings()

    # The variables given win; the profile still fills what they leave out.
    assert settings.retry.max_retries == 5
    assert settings.retry.delay_seconds == 10.0
    assert settings.node_timeout_seconds == 42.0
    assert settings.max_run_seconds == 6 * 3600.0


def test_whole_nested_value_as_json_merges_with_the_profile(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("HIVE_PROFILE", "production")
    clean_env.setenv("HIVE_RETRY", json.dumps({"jitter": "none"}))

    retry = HiveSettings().retry

    assert retry == RetrySettings(
        max_retries=3, delay_seconds=10.0, backoff="exponential", jitter="none"
    )


@pytest.mark.parametrize(
    ("variable", "value", "location"),
    [
        ("HIVE_PROFILE", "staging", ("profile",)),
        ("HIVE_MAX_NODES", "many", ("max_nodes",)),
        ("HIVE_MAX_NODES", "0", ("max_nodes",)),
        ("HIVE_NODE_TIMEOUT_SECONDS", "-1", ("node_timeout_seconds",)),
        ("HIVE_PARQUET_COMPRESSION", "gzip", ("parquet_compression",)),
        ("HIVE_RETRY__MAX_RETRIES", "99", ("retry", "max_retries")),
        ("HIVE_RETRY__JITTER", "sometimes", ("retry", "jitter")),
    ],
)
def test_bad_values_raise_an_error_naming_the_setting(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, location: tuple[str, ...]
) -> None:
    clean_env.setenv(variable, value)

    with pytest.raises(SettingsInvalidError) as caught:
        get_settings()

    assert str(caught.value).splitlines()[1].startswith(f"  {variable}: ")
    assert variable_name(location) == variable


def test_nothing_is_read_at_import_time(tmp_path: Path) -> None:
    """With a bogus profile, importing the definitions works; building them raises."""
    script = textwrap.dedent(
        """
        import hive_pipelines.definitions as definitions
        from hive_pipelines.settings import SettingsInvalidError, get_settings

        print("imported, cached settings:", get_settings.cache_info().currsize)
        try:
            definitions.defs()
        except SettingsInvalidError as exc:
            print("defs() raised:", str(exc).splitlines()[1].split(":")[0].strip())
        else:
            print("defs() did not raise")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HIVE_")}
    env.update(HIVE_PROFILE="bogus", HIVE_FLOWS_DIR=str(tmp_path / "missing"))

    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "imported, cached settings: 0",
        "defs() raised: HIVE_PROFILE",
    ]
