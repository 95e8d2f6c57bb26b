"""Transforms that know the NYC flights 2013 tables and their quirks.

Cancelled flights have no departure time; clock times are HHMM integers where 2400 means
midnight of the next day; an arrival clock time earlier than the departure is the next day.
"""

from __future__ import annotations

import pandas as pd
from pydantic import Field

from hive_pipelines.transforms.builtin import hhmm_datetime, require_columns
from hive_pipelines.transforms.registry import TransformContext, TransformParams, transform

FLIGHT_COLUMNS = [
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "origin",
    "dest",
    "air_time",
    "distance",
    "hour",
    "time_hour",
]


class CleanFlightsParams(TransformParams):
    delayed_minutes: int = Field(default=15, ge=0, description="A departure this late is delayed.")


@transform(
    "clean_flights",
    params=CleanFlightsParams,
    description="Flag cancelled flights and turn HHMM clock times into datetimes.",
)
def clean_flights(
    ctx: TransformContext, params: CleanFlightsParams, flights: pd.DataFrame
) -> pd.DataFrame:
    require_columns(flights, FLIGHT_COLUMNS, "clean_flights")
    out = flights[FLIGHT_COLUMNS].copy()
    out["cancelled"] = out["dep_time"].isna()
    out["sched_dep_at"] = hhmm_datetime(
        out["year"], out["month"], out["day"], out["sched_dep_time"]
    )
    out["dep_at"] = hhmm_datetime(out["year"], out["month"], out["day"], out["dep_time"])
    # A departure clock far earlier than scheduled left after midnight (delays up to ~22 h).
    late_overnight = out["dep_at"] < out["sched_dep_at"] - pd.Timedelta(hours=6)
    out.loc[late_overnight, "dep_at"] += pd.Timedelta(days=1)
    out["arr_at"] = hhmm_datetime(
        out["year"], out["month"], out["day"], out["arr_time"], not_before=out["dep_at"]
    )
    out["overnight"] = out["arr_at"].dt.normalize() > out["dep_at"].dt.normalize()
    out["time_hour"] = pd.to_datetime(out["time_hour"])
    # 1.0 or 0.0, null when unknown, so that a mean is the share of delayed flights.
    out["dep_delayed"] = _flag(out["dep_delay"] > params.delayed_minutes, out["dep_delay"])
    out["arr_delayed"] = _flag(out["arr_delay"] > params.delayed_minutes, out["arr_delay"])
    return out


def _flag(condition: pd.Series, source: pd.Series) -> pd.Series:
    return condition.astype("float64").where(source.notna())


class CleanWeatherParams(TransformParams):
    max_wind_speed: float = Field(default=200.0, gt=0, description="Faster is a sensor error.")


@transform(
    "clean_weather",
    params=CleanWeatherParams,
    description="One row per origin and hour, impossible wind speeds set to null.",
)
def clean_weather(
    ctx: TransformContext, params: CleanWeatherParams, weather: pd.DataFrame
) -> pd.DataFrame:
    require_columns(weather, ["origin", "time_hour", "wind_speed"], "clean_weather")
    out = weather.copy()
    out["time_hour"] = pd.to_datetime(out["time_hour"])
    out.loc[out["wind_speed"] > params.max_wind_speed, "wind_speed"] = float("nan")
    out = out.drop_duplicates(subset=["origin", "time_hour"], keep="first")
    return out.drop(columns=["year", "month", "day", "hour"], errors="ignore").reset_index(
        drop=True
    )
