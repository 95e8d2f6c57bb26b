"""The NYC flights transforms on a few hand-written rows."""

from __future__ import annotations

import pandas as pd
import pytest

from hive_pipelines.transforms.builtin import TransformInputError
from hive_pipelines.transforms.flights import (
    FLIGHT_COLUMNS,
    CleanFlightsParams,
    CleanWeatherParams,
    clean_flights,
    clean_weather,
)
from hive_pipelines.transforms.registry import TransformContext

NaN = float("nan")


@pytest.fixture
def ctx() -> TransformContext:
    return TransformContext(flow="flight_delays", node="flights", run_id="run-1")


def flight(dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay) -> dict:
    return {
        "year": 2013,
        "month": 1,
        "day": 1,
        "dep_time": dep_time,
        "sched_dep_time": sched_dep_time,
        "dep_delay": dep_delay,
        "arr_time": arr_time,
        "sched_arr_time": sched_arr_time,
        "arr_delay": arr_delay,
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "air_time": 227.0,
        "distance": 1400,
        "hour": sched_dep_time // 100,
        "time_hour": "2013-01-01T10:00:00Z",
    }


@pytest.fixture
def flights() -> pd.DataFrame:
    rows = [
        # On time: left 05:17, two minutes late; arrived 08:30.
        flight(517.0, 515, 2.0, 830.0, 819, 11.0),
        # Cancelled: no departure, no arrival, no delays.
        flight(NaN, 1630, NaN, NaN, 1815, NaN),
        # 2400: left at midnight, one minute late; 04:30 arrival is the same next day.
        flight(2400.0, 2359, 1.0, 430.0, 425, 5.0),
        # Left 23:30 and landed 01:05: an overnight arrival.
        flight(2330.0, 2250, 40.0, 105.0, 20, 45.0),
        # Scheduled 23:00, left 00:10 after midnight, 70 minutes late.
        flight(10.0, 2300, 70.0, 200.0, 50, 70.0),
        # Departed on time but the arrival time is unknown (diverted).
        flight(1200.0, 1200, 0.0, NaN, 1500, NaN),
    ]
    frame = pd.DataFrame(rows)
    frame["extra"] = "dropped"
    return frame


def test_clean_flights_flags_cancelled_flights(ctx: TransformContext, flights) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    assert out["cancelled"].tolist() == [False, True, False, False, False, False]
    assert out["dep_at"].isna().tolist() == [False, True, False, False, False, False]
    assert out["arr_at"].isna().tolist() == [False, True, False, False, False, True]


def test_clean_flights_turns_2400_into_midnight_of_the_next_day(
    ctx: TransformContext, flights
) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    assert out["sched_dep_at"][2] == pd.Timestamp("2013-01-01 23:59")
    assert out["dep_at"][2] == pd.Timestamp("2013-01-02 00:00")
    assert out["arr_at"][2] == pd.Timestamp("2013-01-02 04:30")


def test_clean_flights_moves_an_overnight_arrival_to_the_next_day(
    ctx: TransformContext, flights
) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    assert out["dep_at"][3] == pd.Timestamp("2013-01-01 23:30")
    assert out["arr_at"][3] == pd.Timestamp("2013-01-02 01:05")
    assert out["overnight"].tolist() == [False, False, False, True, False, False]


def test_clean_flights_departure_after_midnight_is_the_next_day(
    ctx: TransformContext, flights
) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    assert out["sched_dep_at"][4] == pd.Timestamp("2013-01-01 23:00")
    assert out["dep_at"][4] == pd.Timestamp("2013-01-02 00:10")
    assert out["arr_at"][4] == pd.Timestamp("2013-01-02 02:00")
    assert out["dep_at"][0] == pd.Timestamp("2013-01-01 05:17")
    assert out["arr_at"][0] == pd.Timestamp("2013-01-01 08:30")


def test_clean_flights_delayed_flags_are_one_zero_or_null(ctx: TransformContext, flights) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    dep = [None if pd.isna(v) else v for v in out["dep_delayed"]]
    arr = [None if pd.isna(v) else v for v in out["arr_delayed"]]
    # Delays of 2, -, 1, 40, 70, 0 minutes against the 15 minute threshold.
    assert dep == [0.0, None, 0.0, 1.0, 1.0, 0.0]
    assert arr == [0.0, None, 0.0, 1.0, 1.0, None]
    assert out["dep_delayed"].dtype == "float64"
    # The mean of the flag is the share of delayed flights among those with a known delay.
    assert out["dep_delayed"].mean() == pytest.approx(2 / 5)


def test_clean_flights_threshold_is_a_param(ctx: TransformContext, flights) -> None:
    out = clean_flights(ctx, CleanFlightsParams(delayed_minutes=1), flights)

    dep = [None if pd.isna(v) else v for v in out["dep_delayed"]]
    assert dep == [1.0, None, 0.0, 1.0, 1.0, 0.0]


def test_clean_flights_keeps_the_flight_columns_and_parses_time_hour(
    ctx: TransformContext, flights
) -> None:
    out = clean_flights(ctx, CleanFlightsParams(), flights)

    assert list(out.columns) == [
        *FLIGHT_COLUMNS,
        "cancelled",
        "sched_dep_at",
        "dep_at",
        "arr_at",
        "overnight",
        "dep_delayed",
        "arr_delayed",
    ]
    assert out["time_hour"][0] == pd.Timestamp("2013-01-01 10:00", tz="UTC")
    assert "extra" in flights.columns


def test_clean_flights_missing_column_names_it(ctx: TransformContext, flights) -> None:
    with pytest.raises(TransformInputError) as raised:
        clean_flights(ctx, CleanFlightsParams(), flights.drop(columns=["time_hour", "dest"]))

    assert "clean_flights: no column(s) ['dest', 'time_hour']" in str(raised.value)


def test_clean_weather_nulls_impossible_wind_and_keeps_one_row_per_hour(
    ctx: TransformContext,
) -> None:
    weather = pd.DataFrame(
        {
            "origin": ["EWR", "EWR", "EWR", "JFK"],
            "year": [2013] * 4,
            "month": [1] * 4,
            "day": [1] * 4,
            "hour": [1, 1, 2, 1],
            "wind_speed": [10.0, 12.0, 1048.0, 5.0],
            "time_hour": [
                "2013-01-01T06:00:00Z",
                "2013-01-01T06:00:00Z",
                "2013-01-01T07:00:00Z",
                "2013-01-01T06:00:00Z",
            ],
        }
    )

    out = clean_weather(ctx, CleanWeatherParams(), weather)

    assert list(out.columns) == ["origin", "wind_speed", "time_hour"]
    assert out["origin"].tolist() == ["EWR", "EWR", "JFK"]
    assert [None if pd.isna(v) else v for v in out["wind_speed"]] == [10.0, None, 5.0]
    assert out["time_hour"][1] == pd.Timestamp("2013-01-01 07:00", tz="UTC")
    with pytest.raises(TransformInputError, match=r"clean_weather: no column\(s\) \['origin'\]"):
        clean_weather(ctx, CleanWeatherParams(), weather.drop(columns=["origin"]))
