"""Reading flow files: size, encoding, YAML syntax, alias bombs and field types.

Each test writes a real file into tmp_path and validates it as `hive flows validate` would,
then checks the exact problem kind, node, line and the key words of the message.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
import yaml

from hive_pipelines.flowgraph.loader import (
    MAX_YAML_ITEMS,
    FlowYamlLoader,
    parse_flow_file,
    parse_flow_text,
)
from hive_pipelines.flowgraph.problems import FlowValidationError, Problem
from hive_pipelines.flowgraph.validate import FlowReport, validate_flow_file
from hive_pipelines.settings import HiveSettings, get_settings
from hive_pipelines.transforms.registry import TransformRegistry


def write_flow(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def only_problem(report: FlowReport) -> Problem:
    assert report.plan is None
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    problem = report.problems[0]
    assert problem.path == report.path
    return problem


@pytest.fixture
def check(registry: TransformRegistry, settings: HiveSettings):
    def run(path: Path) -> FlowReport:
        return validate_flow_file(path, registry, settings)

    return run


def test_yaml_that_does_not_parse_is_reported_with_its_line(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: broken
        nodes:
          - id: a
            transform: read_table
           params: {root: data, path: x.csv}
        """,
    )

    problem = only_problem(check(path))

    assert problem.kind == "yaml_syntax"
    assert problem.line == 5
    assert problem.node is None
    assert "The YAML does not parse" in problem.message
    assert str(problem).startswith(f"{path}:5: [yaml_syntax]")


def test_unclosed_bracket_is_reported_at_the_line_where_parsing_fails(
    tmp_path: Path, check
) -> None:
    path = write_flow(
        tmp_path,
        """
        name: broken
        nodes:
          - id: a
            transform: [unclosed
          - id: b
        """,
    )

    problem = only_problem(check(path))

    assert problem.kind == "yaml_syntax"
    assert problem.line == 5
    assert "expected ',' or ']'" in problem.message


def test_file_that_is_not_utf8_is_reported_with_the_line_of_the_bad_byte(
    tmp_path: Path, check
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: cafe\ndescription: caf\xe9 au lait\nnodes: []\n")

    problem = only_problem(check(path))

    assert problem.kind == "encoding"
    assert problem.line == 2
    assert "not UTF-8" in problem.message
    assert "0xe9" in problem.message
    assert "byte 27" in problem.message


def test_empty_file_is_reported_as_empty(tmp_path: Path, check) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")

    problem = only_problem(check(path))

    assert problem.kind == "empty"
    assert problem.message == "The file is empty."


def test_whitespace_only_file_is_reported_as_empty(tmp_path: Path, check) -> None:
    path = tmp_path / "blank.yaml"
    path.write_text("   \n\n\t\n")

    problem = only_problem(check(path))

    assert problem.kind == "empty"
    assert "empty" in problem.message


def test_file_of_only_comments_holds_no_yaml_document(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, "# a flow will go here\n# one day\n")

    problem = only_problem(check(path))

    assert problem.kind == "empty"
    assert "no YAML document" in problem.message


def test_file_over_hive_max_flow_file_bytes_is_refused(
    tmp_path: Path, hive_env: Path, registry: TransformRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_MAX_FLOW_FILE_BYTES", "200")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.max_flow_file_bytes == 200
    path = write_flow(
        tmp_path,
        "name: big\ndescription: " + "x" * 300 + "\nnodes:\n  - {id: a, transform: make_rows}\n",
    )
    size = path.stat().st_size

    problem = only_problem(validate_flow_file(path, registry, settings))

    assert problem.kind == "too_large"
    assert f"{size:,} bytes" in problem.message
    assert "over the 200 byte limit" in problem.message
    assert "HIVE_MAX_FLOW_FILE_BYTES" in problem.message


def test_file_exactly_at_the_byte_limit_is_read(
    tmp_path: Path, registry: TransformRegistry, settings: HiveSettings
) -> None:
    path = write_flow(tmp_path, "name: small\nnodes:\n  - {id: a, transform: make_rows}\n")
    limited = settings.model_copy(update={"max_flow_file_bytes": path.stat().st_size})

    report = validate_flow_file(path, registry, limited)

    assert report.problems == []
    assert report.ok


def test_billion_laughs_alias_bomb_is_refused_quickly(tmp_path: Path, check) -> None:
    # Nine levels of ten aliases: 10**9 items once expanded, in a file of under 400 bytes.
    lines = ["name: lol", "lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 9):
        aliases = ", ".join([f"*lol{level - 1}"] * 10)
        lines.append(f"lol{level}: &lol{level} [{aliases}]")
    lines.append("nodes: [{id: a, transform: make_rows, params: {rows: 1}}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1000

    started = time.monotonic()
    problem = only_problem(check(path))
    seconds = time.monotonic() - started

    assert seconds < 2.0
    assert problem.kind == "yaml_size"
    assert f"more than {MAX_YAML_ITEMS:,} items" in problem.message
    assert "aliases" in problem.message
    # lol4 is the first level past 100,000 items (111,111 of them); it sits on line 6.
    assert problem.line == 6


def test_aliases_that_stay_small_are_allowed(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: shared_params
        nodes:
          - id: a
            transform: make_rows
            params: &rows {rows: 2}
          - id: b
            transform: make_rows
            params: *rows
        """,
    )

    report = check(path)

    assert report.problems == []
    assert report.plan is not None
    assert report.plan.node("b").spec.params == {"rows": 2}


def test_recursive_alias_is_refused(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: ouroboros
        nodes: &nodes
          - *nodes
        """,
    )

    problem = only_problem(check(path))

    assert problem.kind == "yaml_size"
    assert "recursive alias" in problem.message
    assert problem.line == 2


def test_misspelt_top_level_key_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: typo
        nodse:
          - {id: a, transform: make_rows}
        """,
    )

    report = check(path)

    assert report.plan is None
    assert [(p.kind, p.node, p.path) for p in report.problems] == [("schema", None, path)] * 2
    messages = sorted(p.message for p in report.problems)
    # Without a `nodes` list the flow is also told what `nodes` must be.
    assert messages == [
        "`nodes` must be a list of nodes, each with an id and a transform.",
        "field `nodse` is not allowed here (is it misspelt?)",
    ]


def test_misspelt_node_key_names_the_node_and_its_line(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: typo
        nodes:
          - id: first
            transform: make_rows
          - id: second
            transform: sort_rows
            upstraem: [first]
            params: {by: [n]}
        """,
    )

    report = check(path)

    schema = [p for p in report.problems if p.kind == "schema"]
    assert len(schema) == 1
    assert schema[0].node == "second"
    assert schema[0].line == 5
    assert schema[0].message == "field `nodes[1].upstraem` is not allowed here (is it misspelt?)"
    assert report.plan is None


def test_node_id_that_is_not_an_identifier_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_ids
        nodes:
          - id: ok_node
            transform: make_rows
          - id: my-node
            transform: make_rows
        """,
    )

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert problem.node == "my-node"
    assert problem.line == 5
    assert "field `nodes[1].id`" in problem.message
    assert "should match pattern" in problem.message


def test_upstream_naming_an_invalid_node_is_not_also_unknown(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_ids
        nodes:
          - id: 1st
            transform: make_rows
          - id: second
            transform: sort_rows
            upstream: ["1st"]
            params: {by: [n]}
        """,
    )

    report = check(path)

    assert [(p.kind, p.node) for p in report.problems] == [("schema", "1st")]


def test_flow_name_that_is_not_an_identifier_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, "name: my flow\nnodes:\n  - {id: a, transform: make_rows}\n")

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert "field `name`" in problem.message
    assert "should match pattern" in problem.message
    assert check(path).name is None


def test_top_level_list_is_refused(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, "- id: a\n  transform: make_rows\n")

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert problem.line == 1
    assert "must be a mapping" in problem.message
    assert "not a list" in problem.message


def test_nodes_that_is_not_a_list_is_refused(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, "name: flat\nnodes: 3\n")

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert "`nodes` must be a list of nodes" in problem.message


def test_flow_without_nodes_is_refused(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, "name: hollow\nnodes: []\n")

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert problem.message == "The flow has no nodes."


def test_node_that_is_not_a_mapping_is_refused_with_its_line(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: strings
        nodes:
          - {id: a, transform: make_rows}
          - just_a_string
        """,
    )

    problem = only_problem(check(path))

    assert problem.kind == "schema"
    assert problem.line == 4
    assert problem.node is None
    assert "field `nodes[1]`" in problem.message
    assert "valid dictionary" in problem.message


def test_missing_file_is_reported_as_unreadable(tmp_path: Path, check) -> None:
    problem = only_problem(check(tmp_path / "nowhere.yaml"))

    assert problem.kind == "unreadable"
    assert "cannot be read" in problem.message


def test_yaml_1_2_booleans_keep_on_and_no_as_strings() -> None:
    data = yaml.load(
        "on: NO\noff: yes\ny: n\nflag: true\nother: False\ncount: 3\nnothing: null\n",
        Loader=FlowYamlLoader,
    )

    assert data == {
        "on": "NO",
        "off": "yes",
        "y": "n",
        "flag": True,
        "other": False,
        "count": 3,
        "nothing": None,
    }


def test_yaml_1_2_booleans_in_a_flow_file(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """
        name: norway
        tags: {on: NO, country: NO, off: Off}
        nodes:
          - id: oslo
            transform: filter_rows
            upstream: [src]
            params:
              conditions: [{column: country, op: eq, value: NO}]
              on: yes
        """
    )

    parsed = parse_flow_text(text, tmp_path / "norway.yaml")

    assert parsed.spec is not None
    assert parsed.spec.tags == {"on": "NO", "country": "NO", "off": "Off"}
    params = parsed.spec.nodes[0].params
    assert params["conditions"][0]["value"] == "NO"
    assert params["on"] == "yes"


def test_plain_safe_loader_would_turn_on_and_no_into_booleans() -> None:
    # The reason FlowYamlLoader exists: YAML 1.1 reads these as booleans.
    assert yaml.safe_load("on: NO") == {True: False}
    assert yaml.load("on: NO", Loader=FlowYamlLoader) == {"on": "NO"}


def test_loader_does_not_change_the_safe_loader_resolvers() -> None:
    yaml.load("x: 1", Loader=FlowYamlLoader)

    assert yaml.safe_load("answer: yes") == {"answer": True}


def test_node_lines_point_at_each_node_item(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        name: lines
        # a comment line
        nodes:
          - id: a
            transform: make_rows

          - id: b
            transform: make_rows
          - {id: c, transform: make_rows}
        """,
    )

    parsed = parse_flow_file(path, max_bytes=10_000)

    assert parsed.problems == []
    assert parsed.node_lines == {"a": 4, "b": 7, "c": 9}


def test_byte_order_mark_is_accepted(tmp_path: Path, check) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffname: bom\nnodes:\n  - {id: a, transform: make_rows}\n".encode())

    report = check(path)

    assert report.problems == []
    assert report.name == "bom"


def test_problem_text_names_file_line_kind_and_node(tmp_path: Path) -> None:
    problem = Problem(tmp_path / "f.yaml", "arity", "Takes 2.", node="join_1", line=12)
    flowless = Problem(tmp_path / "f.yaml", "empty", "The file is empty.")

    assert str(problem) == f"{tmp_path / 'f.yaml'}:12: [arity] node 'join_1': Takes 2."
    assert str(flowless) == f"{tmp_path / 'f.yaml'}: [empty] The file is empty."
    error = FlowValidationError([problem, flowless])
    assert str(error).splitlines() == [
        "2 problem(s) found in flow files:",
        f"  {problem}",
        f"  {flowless}",
    ]


def test_a_key_given_twice_in_one_mapping_is_refused_with_both_lines(tmp_path: Path, check) -> None:
    # Regression: YAML keeps the last of two `params:` keys, so the first vanished silently.
    path = write_flow(
        tmp_path,
        """
        name: twice
        nodes:
          - id: a
            transform: make_rows
            params: {rows: 1}
            params: {rows: 2}
        """,
    )

    problem = only_problem(check(path))

    assert (problem.kind, problem.line) == ("yaml_syntax", 6)
    assert problem.message == (
        "The key 'params' appears twice in one mapping (first at line 5); YAML would "
        "silently keep only the last one."
    )
