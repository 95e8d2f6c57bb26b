"""The `hive` command, run as a real subprocess with the environment it would get in a shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hive_pipelines_tests.conftest import FIXTURES, PROJECT_DIR

HIVE = Path(sys.executable).parent / "hive"
SHIPPED_FLOWS = PROJECT_DIR / "flows"

GOOD_FLOW = """
name: good_numbers
nodes:
  - id: numbers
    transform: make_rows
    params: {rows: 4}
  - id: big
    transform: filter_rows
    upstream: [numbers]
    params: {conditions: [{column: n, op: ge, value: 2}]}
"""

BAD_FLOW = """
name: bad_numbers
nodes:
  - id: numbers
    transform: make_rows
  - id: big
    transform: filter_row
    upstream: [numbers]
  - id: joined
    transform: join
    upstream: [big]
    params: {on: [n]}
"""


def hive(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIVE), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def shipped_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any HIVE_ settings, pointed at the shipped flows."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HIVE_")}
    env["HIVE_FLOWS_DIR"] = str(SHIPPED_FLOWS)
    env["HIVE_VAR_DIR"] = str(tmp_path / "var")
    return env


def write_flow(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_hive_script_is_installed_next_to_python() -> None:
    assert HIVE.is_file()
    assert os.access(HIVE, os.X_OK)


def test_flows_validate_on_the_shipped_flows_exits_0(tmp_path: Path) -> None:
    shipped = sorted(p for p in SHIPPED_FLOWS.iterdir() if p.suffix in {".yaml", ".yml"})

    result = hive("flows", "validate", env=shipped_env(tmp_path), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    expected = f"ok      {SHIPPED_FLOWS / 'flight_delays.yaml'}: flow 'flight_delays', 21 nodes"
    assert expected in lines
    assert lines[-1] == f"{len(shipped)} file(s), 0 problem(s)."
    assert "INVALID" not in result.stdout


def test_flows_validate_on_a_bad_file_exits_1_and_prints_each_problem(
    hive_env: Path, tmp_path: Path
) -> None:
    bad = write_flow(tmp_path, "bad.yaml", BAD_FLOW)

    result = hive("flows", "validate", str(bad), env=dict(os.environ), cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f"INVALID {bad}: 2 problem(s)",
        f"  {bad}:5: [unknown_transform] node 'big': Transform 'filter_row' is not registered. "
        "Did you mean 'filter_rows'?",
        f"  {bad}:8: [arity] node 'joined': Transform 'join' takes exactly 2 upstream node(s), "
        "but the node lists 1.",
        "1 file(s), 2 problem(s).",
    ]


def test_flows_validate_on_the_several_problems_fixture_lists_all_eight(
    hive_env: Path, tmp_path: Path
) -> None:
    fixture = FIXTURES / "flows" / "several_problems.yaml"

    result = hive("flows", "validate", str(fixture), env=dict(os.environ), cwd=tmp_path)

    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(problems) == 8
    for where in [
        f"{fixture}:23: [schema] node '2bad':",
        f"{fixture}:15: [duplicate_id] node 'sorted':",
        f"{fixture}:8: [unknown_transform] node 'cleaned':",
        f"{fixture}:11: [arity] node 'joined':",
        f"{fixture}:15: [unknown_upstream] node 'sorted':",
        f"{fixture}:15: [params] node 'sorted': field `params.by`",
        f"{fixture}:26: [self_loop] node 'loop':",
        f"{fixture}: [too_deep] The flow is 3 nodes deep",
    ]:
        assert any(line.startswith(f"  {where}") for line in problems), where
    assert result.stdout.splitlines()[-1] == "1 file(s), 8 problem(s)."


def test_flows_validate_on_a_mix_of_good_and_bad_files_reports_both(
    hive_env: Path, tmp_path: Path
) -> None:
    # The folder comes from HIVE_FLOWS_DIR, set by hive_env and inherited by the subprocess.
    good = write_flow(hive_env, "a_good.yaml", GOOD_FLOW)
    bad = write_flow(hive_env, "b_bad.yaml", BAD_FLOW)
    (hive_env / "notes.txt").write_text("not a flow")

    result = hive("flows", "validate", env=dict(os.environ), cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok      {good}: flow 'good_numbers', 2 nodes"
    assert lines[1] == f"INVALID {bad}: 2 problem(s)"
    assert lines[2].startswith(f"  {bad}:5: [unknown_transform] node 'big':")
    assert lines[3].startswith(f"  {bad}:8: [arity] node 'joined':")
    assert lines[-1] == "2 file(s), 2 problem(s)."


def test_flows_validate_on_a_file_that_does_not_parse_shows_its_line(
    hive_env: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nnodes:\n  - id: a\n    transform: [make_rows\n")

    result = hive("flows", "validate", str(broken), env=dict(os.environ), cwd=tmp_path)

    assert result.returncode == 1
    assert f"  {broken}:5: [yaml_syntax] The YAML does not parse" in result.stdout


def test_flows_show_prints_the_21_nodes_of_flight_delays_in_execution_order(
    tmp_path: Path,
) -> None:
    spec = yaml.safe_load((SHIPPED_FLOWS / "flight_delays.yaml").read_text())
    upstreams = {node["id"]: node.get("upstream", []) for node in spec["nodes"]}

    result = hive("flows", "show", "flight_delays", env=shipped_env(tmp_path), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"flow flight_delays ({SHIPPED_FLOWS / 'flight_delays.yaml'}), max run time 1800 s"
    )
    pattern = re.compile(
        r"^\s*(\d+)\. (\w+)\s+(\w+)\s+<- (.+?)   \[timeout (\S+) s, retries (\d+)]$"
    )
    rows = [match.groups() for line in lines if (match := pattern.match(line))]
    assert [int(row[0]) for row in rows] == list(range(1, 22))
    order = [row[1] for row in rows]
    assert order == [
        "airlines",
        "airports",
        "flights_raw",
        "flights",
        "carrier_delays",
        "carrier_stats",
        "hourly_delays",
        "route_delays",
        "route_origin",
        "route_stats",
        "busy_routes",
        "top_delayed_routes",
        "reports_csv",
        "weather_raw",
        "weather",
        "flights_weather",
        "weather_bands",
        "delays_by_precip",
        "delays_by_visibility",
        "weather_correlation",
        "reports",
    ]
    assert set(order) == set(upstreams)
    for _, node, _, shown, timeout, retries in rows:
        expected = ", ".join(upstreams[node]) or "-"
        assert shown == expected, node
        assert all(order.index(up) < order.index(node) for up in upstreams[node]), node
        assert (timeout, retries) == ("300", "2")
    transforms = {row[1]: row[2] for row in rows}
    assert transforms["flights"] == "clean_flights"
    assert transforms["reports"] == "write_parquet"


def test_flows_show_unknown_flow_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    result = hive("flows", "show", "nosuch", env=shipped_env(tmp_path), cwd=tmp_path)

    assert result.returncode != 0
    assert result.stdout == ""
    assert f"Error: No flow named 'nosuch' in {SHIPPED_FLOWS}; flows: " in result.stderr
    assert "flight_delays" in result.stderr
    assert "Traceback" not in result.stderr


def test_flows_show_invalid_flow_lists_its_problems(hive_env: Path, tmp_path: Path) -> None:
    bad = write_flow(hive_env, "bad.yaml", BAD_FLOW)

    result = hive("flows", "show", "bad_numbers", env=dict(os.environ), cwd=tmp_path)

    assert result.returncode != 0
    assert "2 problem(s) found in flow files:" in result.stderr
    assert f"{bad}:5: [unknown_transform] node 'big':" in result.stderr
    assert "Traceback" not in result.stderr


def test_transforms_lists_the_builtins_with_arity_and_description(tmp_path: Path) -> None:
    result = hive("transforms", env=shipped_env(tmp_path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    for name in [
        "read_table",
        "filter_rows",
        "select_columns",
        "derive_column",
        "cast_columns",
        "join",
        "aggregate",
        "union",
        "write_parquet",
        "write_csv",
        "clean_flights",
    ]:
        assert name in rows, name
    assert "exactly 2 upstream node(s)" in rows["join"]
    assert "at least 2 upstream node(s)" in rows["union"]
    assert "exactly 0 upstream node(s)" in rows["read_table"]
    assert "Keep the rows that meet all (or any) of the conditions." in rows["filter_rows"]
    assert list(rows) == sorted(rows)
    # Test-only transforms are absent unless HIVE_TRANSFORM_MODULES lists their module.
    assert "make_rows" not in rows


def test_transforms_includes_modules_from_hive_transform_modules(
    hive_env: Path, tmp_path: Path
) -> None:
    result = hive("transforms", env=dict(os.environ), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"make_rows", "hang", "fail_then_succeed", "join"} <= set(names)


def test_hive_help_lists_its_commands(tmp_path: Path) -> None:
    result = hive("--help", env=shipped_env(tmp_path), cwd=tmp_path)

    assert result.returncode == 0
    for command in ["flows", "transforms", "run"]:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize(
    ("variables", "args", "expected"),
    [
        ({"HIVE_MAX_NODES": "abc"}, ["flows", "validate"], "HIVE_MAX_NODES: Input should be"),
        ({"HIVE_DATA_ROOTS": "not json"}, ["flows", "validate"], "written as JSON"),
        ({"HIVE_FLOWS_DIR": "/nonexistent/flows"}, ["flows", "show", "x"], "does not exist"),
        ({}, ["run", "flight_delays"], "DAGSTER_HOME is not set"),
    ],
)
def test_user_mistakes_give_one_clear_line_not_a_traceback(
    tmp_path: Path, variables: dict[str, str], args: list[str], expected: str
) -> None:
    # Regression: each of these printed a Python traceback of 30 lines or more.
    env = {k: v for k, v in shipped_env(tmp_path).items() if k != "DAGSTER_HOME"}
    env.update(variables)

    done = hive(*args, env=env, cwd=tmp_path)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: ") and expected in done.stderr
