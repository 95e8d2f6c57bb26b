"""Graph checks on whole flows, the collect-all report, and the plan of a valid flow."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hive_pipelines.flowgraph.problems import FlowValidationError, Problem
from hive_pipelines.flowgraph.validate import (
    FlowReport,
    flow_files,
    load_plan,
    validate_flow_file,
    validate_flows,
)
from hive_pipelines.settings import HiveSettings, RetrySettings
from hive_pipelines.transforms.registry import TransformRegistry
from hive_pipelines_tests.conftest import FIXTURES, PROJECT_DIR


def write_flow(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def where(report: FlowReport) -> list[tuple[str, str | None, int | None]]:
    """(kind, node, line) of every problem, after checking each names the report's file."""
    assert all(problem.path == report.path for problem in report.problems)
    return [(p.kind, p.node, p.line) for p in report.problems]


def message(report: FlowReport, kind: str) -> str:
    messages = [p.message for p in report.problems if p.kind == kind]
    assert len(messages) == 1, [str(p) for p in report.problems]
    return messages[0]


@pytest.fixture
def check(registry: TransformRegistry, settings: HiveSettings):
    def run(path: Path, custom: HiveSettings | None = None) -> FlowReport:
        return validate_flow_file(path, registry, custom or settings)

    return run


def test_cycle_is_reported_with_its_path(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: loop_of_three
        nodes:
          - id: src
            transform: make_rows
          - id: a
            transform: union
            upstream: [src, c]
          - id: b
            transform: sort_rows
            upstream: [a]
            params: {by: [n]}
          - id: c
            transform: sort_rows
            upstream: [b]
            params: {by: [n]}
        """,
    )

    report = check(path)

    assert where(report) == [("cycle", "a", 5)]
    assert message(report, "cycle") == "The nodes form a cycle: a -> b -> c -> a."
    assert report.plan is None


def test_two_separate_cycles_are_each_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: two_loops
        nodes:
          - {id: a, transform: sort_rows, upstream: [b], params: {by: [n]}}
          - {id: b, transform: sort_rows, upstream: [a], params: {by: [n]}}
          - {id: x, transform: sort_rows, upstream: [y], params: {by: [n]}}
          - {id: y, transform: sort_rows, upstream: [x], params: {by: [n]}}
        """,
    )

    report = check(path)

    assert where(report) == [("cycle", "a", 3), ("cycle", "x", 5)]
    messages = [p.message for p in report.problems]
    assert messages == [
        "The nodes form a cycle: a -> b -> a.",
        "The nodes form a cycle: x -> y -> x.",
    ]


def test_self_loop_is_reported_for_its_node(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: selfish
        nodes:
          - id: src
            transform: make_rows
          - id: me
            transform: union
            upstream: [src, me]
        """,
    )

    report = check(path)

    assert where(report) == [("self_loop", "me", 5)]
    assert message(report, "self_loop") == "The node lists itself as its own upstream."


def test_unknown_transform_suggests_the_closest_registered_name(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: typo
        nodes:
          - id: src
            transform: make_rows
          - id: keep
            transform: filter_row
            upstream: [src]
            params: {conditions: [{column: n, op: gt, value: 0}]}
        """,
    )

    report = check(path)

    assert where(report) == [("unknown_transform", "keep", 5)]
    assert message(report, "unknown_transform") == (
        "Transform 'filter_row' is not registered. Did you mean 'filter_rows'?"
    )


def test_unknown_transform_with_no_close_name_points_to_hive_transforms(
    tmp_path: Path, check
) -> None:
    path = write_flow(tmp_path, "name: odd\nnodes:\n  - {id: a, transform: qqqqqqqq}\n")

    report = check(path)

    assert where(report) == [("unknown_transform", "a", 3)]
    assert message(report, "unknown_transform") == (
        "Transform 'qqqqqqqq' is not registered. `hive transforms` lists them."
    )


def test_upstream_that_does_not_exist_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: dangling
        nodes:
          - id: src
            transform: make_rows
          - id: sorted
            transform: sort_rows
            upstream: [scr]
            params: {by: [n]}
        """,
    )

    report = check(path)

    assert where(report) == [("unknown_upstream", "sorted", 5)]
    assert message(report, "unknown_upstream") == "Upstream 'scr' is not a node of this flow."


def test_upstream_listed_twice_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: twice
        nodes:
          - id: src
            transform: make_rows
          - id: both
            transform: union
            upstream: [src, src]
        """,
    )

    report = check(path)

    assert where(report) == [("duplicate_upstream", "both", 5)]
    assert message(report, "duplicate_upstream") == "Upstream 'src' is listed 2 times."


def test_duplicate_node_id_is_reported_at_its_first_line_with_every_line(
    tmp_path: Path, check
) -> None:
    path = write_flow(
        tmp_path,
        """
        name: twins
        nodes:
          - id: rows
            transform: make_rows
          - id: other
            transform: make_rows
          - id: rows
            transform: make_rows
            params: {rows: 5}
        """,
    )

    report = check(path)

    assert where(report) == [("duplicate_id", "rows", 3)]
    assert message(report, "duplicate_id") == (
        "The id is used by 2 nodes (at lines 3, 7); ids must be unique."
    )


def test_params_that_do_not_fit_the_params_model_name_the_field(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_params
        nodes:
          - id: src
            transform: make_rows
          - id: keep
            transform: filter_rows
            upstream: [src]
            params: {conditions: []}
        """,
    )

    report = check(path)

    assert where(report) == [("params", "keep", 5)]
    text = message(report, "params")
    assert text.startswith("field `params.conditions`:")
    assert "at least 1 item" in text


def test_params_with_a_wrong_operator_name_the_nested_field(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_params
        nodes:
          - id: src
            transform: make_rows
          - id: keep
            transform: filter_rows
            upstream: [src]
            params:
              conditions:
                - {column: n, op: gt, value: 1}
                - {column: n, op: like, value: 1}
        """,
    )

    report = check(path)

    assert where(report) == [("params", "keep", 5)]
    text = message(report, "params")
    assert text.startswith("field `params.conditions.1.op`:")
    assert "'eq'" in text
    assert "'startswith'" in text


def test_params_rule_across_fields_gives_its_reason(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_params
        nodes:
          - id: src
            transform: make_rows
          - id: keep
            transform: filter_rows
            upstream: [src]
            params: {conditions: [{column: n, op: between, value: 3}]}
        """,
    )

    report = check(path)

    assert where(report) == [("params", "keep", 5)]
    assert message(report, "params") == (
        "field `params.conditions.0`: Value error, operator 'between' needs a list as value"
    )


def test_misspelt_and_missing_params_are_each_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: bad_params
        nodes:
          - id: src
            transform: make_rows
          - id: ordered
            transform: sort_rows
            upstream: [src]
            params: {bi: [n]}
        """,
    )

    report = check(path)

    assert where(report) == [("params", "ordered", 5), ("params", "ordered", 5)]
    assert sorted(p.message for p in report.problems) == [
        "field `params.bi` is not allowed here (is it misspelt?)",
        "field `params.by`: Field required",
    ]


def test_wrong_number_of_upstreams_is_an_arity_problem(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: lonely_join
        nodes:
          - id: left
            transform: make_rows
          - id: joined
            transform: join
            upstream: [left]
            params: {on: [n]}
        """,
    )

    report = check(path)

    assert where(report) == [("arity", "joined", 5)]
    assert message(report, "arity") == (
        "Transform 'join' takes exactly 2 upstream node(s), but the node lists 1."
    )


def test_source_transform_with_an_upstream_is_an_arity_problem(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: fed_source
        nodes:
          - id: first
            transform: make_rows
          - id: second
            transform: make_rows
            upstream: [first]
        """,
    )

    report = check(path)

    assert where(report) == [("arity", "second", 5)]
    assert "takes exactly 0 upstream node(s), but the node lists 1" in message(report, "arity")


def test_union_of_one_input_is_an_arity_problem(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: lone_union
        nodes:
          - {id: a, transform: make_rows}
          - {id: u, transform: union, upstream: [a]}
        """,
    )

    report = check(path)

    assert where(report) == [("arity", "u", 4)]
    assert "takes at least 2 upstream node(s), but the node lists 1" in message(report, "arity")


def test_node_fed_only_by_a_cycle_is_unreachable(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: no_way_in
        nodes:
          - {id: a, transform: sort_rows, upstream: [b], params: {by: [n]}}
          - {id: b, transform: sort_rows, upstream: [a], params: {by: [n]}}
          - {id: downstream, transform: sort_rows, upstream: [b], params: {by: [n]}}
          - {id: src, transform: make_rows}
        """,
    )

    report = check(path)

    assert where(report) == [("cycle", "a", 3), ("unreachable", "downstream", 5)]
    text = message(report, "unreachable")
    assert "not reachable from any source node" in text
    assert "in a cycle or missing" in text


def test_flow_deeper_than_its_limit_shows_the_chain(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: deep
        limits: {max_depth: 3}
        nodes:
          - {id: one, transform: make_rows}
          - {id: two, transform: sort_rows, upstream: [one], params: {by: [n]}}
          - {id: three, transform: sort_rows, upstream: [two], params: {by: [n]}}
          - {id: four, transform: sort_rows, upstream: [three], params: {by: [n]}}
          - {id: side, transform: sort_rows, upstream: [one], params: {by: [n]}}
        """,
    )

    report = check(path)

    assert where(report) == [("too_deep", None, None)]
    assert message(report, "too_deep") == (
        "The flow is 4 nodes deep, over its limit of 3: one -> two -> three -> four."
    )


def test_depth_limit_comes_from_settings_when_the_flow_sets_none(
    tmp_path: Path, check, settings: HiveSettings
) -> None:
    path = write_flow(
        tmp_path,
        """
        name: deep
        nodes:
          - {id: one, transform: make_rows}
          - {id: two, transform: sort_rows, upstream: [one], params: {by: [n]}}
          - {id: three, transform: sort_rows, upstream: [two], params: {by: [n]}}
        """,
    )

    assert check(path, settings.model_copy(update={"max_depth": 3})).ok
    report = check(path, settings.model_copy(update={"max_depth": 2}))

    assert where(report) == [("too_deep", None, None)]
    assert "3 nodes deep, over its limit of 2: one -> two -> three" in message(report, "too_deep")


def test_flow_with_more_nodes_than_its_limit_is_reported(tmp_path: Path, check) -> None:
    path = write_flow(
        tmp_path,
        """
        name: crowded
        limits: {max_nodes: 2}
        nodes:
          - {id: a, transform: make_rows}
          - {id: b, transform: make_rows}
          - {id: c, transform: make_rows}
        """,
    )

    report = check(path)

    assert where(report) == [("too_many_nodes", None, None)]
    assert message(report, "too_many_nodes") == "The flow has 3 nodes, over its limit of 2."


def test_node_count_over_the_settings_limit_is_reported(
    tmp_path: Path, check, settings: HiveSettings
) -> None:
    nodes = "".join(f"  - {{id: n{i}, transform: make_rows}}\n" for i in range(6))
    path = write_flow(tmp_path, "name: crowded\nnodes:\n" + nodes)

    report = check(path, settings.model_copy(update={"max_nodes": 5}))

    assert where(report) == [("too_many_nodes", None, None)]
    assert message(report, "too_many_nodes") == "The flow has 6 nodes, over its limit of 5."


def test_flow_limits_above_the_settings_ceiling_are_reported(
    tmp_path: Path, check, settings: HiveSettings
) -> None:
    assert (settings.max_nodes, settings.max_depth) == (200, 50)
    path = write_flow(
        tmp_path,
        """
        name: greedy
        limits: {max_nodes: 500, max_depth: 80}
        nodes:
          - {id: a, transform: make_rows}
        """,
    )

    report = check(path)

    assert where(report) == [("limit", None, None), ("limit", None, None)]
    assert [p.message for p in report.problems] == [
        "limits.max_nodes is 500, over the ceiling of 200 set by HIVE_MAX_NODES.",
        "limits.max_depth is 80, over the ceiling of 50 set by HIVE_MAX_DEPTH.",
    ]


def test_two_files_with_the_same_flow_name_are_both_a_duplicate_flow(
    tmp_path: Path, registry: TransformRegistry, settings: HiveSettings
) -> None:
    text = "name: same\nnodes:\n  - {id: a, transform: make_rows}\n"
    first = write_flow(tmp_path, text, "a_first.yaml")
    second = write_flow(tmp_path, text, "b_second.yaml")

    reports = validate_flows([first, second], registry, settings)

    assert reports[0].plan is None and reports[1].plan is None
    assert where(reports[0]) == where(reports[1]) == [("duplicate_flow", None, None)]
    assert message(reports[1], "duplicate_flow") == (
        f"Flow name 'same' is also used by {first}; names must be unique, so none of these "
        "files runs until one is renamed."
    )


def test_a_file_with_several_problems_reports_all_of_them(
    registry: TransformRegistry, settings: HiveSettings
) -> None:
    path = FIXTURES / "flows" / "several_problems.yaml"

    report = validate_flow_file(path, registry, settings)

    assert report.plan is None
    assert report.name == "several_problems"
    assert sorted(where(report), key=str) == sorted(
        [
            ("schema", "2bad", 23),
            ("duplicate_id", "sorted", 15),
            ("unknown_transform", "cleaned", 8),
            ("arity", "joined", 11),
            ("unknown_upstream", "sorted", 15),
            ("params", "sorted", 15),
            ("self_loop", "loop", 26),
            ("too_deep", None, None),
        ],
        key=str,
    )
    assert "should match pattern" in message(report, "schema")
    assert "Did you mean 'filter_rows'?" in message(report, "unknown_transform")
    assert "takes exactly 2 upstream node(s)" in message(report, "arity")
    assert "'missing_node'" in message(report, "unknown_upstream")
    assert message(report, "params").startswith("field `params.by`:")
    assert "source -> joined -> sorted" in message(report, "too_deep")


def test_load_plan_raises_with_every_problem_of_the_file(
    registry: TransformRegistry, settings: HiveSettings
) -> None:
    path = FIXTURES / "flows" / "several_problems.yaml"

    with pytest.raises(FlowValidationError) as raised:
        load_plan(path, registry, settings)

    assert len(raised.value.problems) == 8
    text = str(raised.value)
    assert text.startswith("8 problem(s) found in flow files:")
    assert f"{path}:8: [unknown_transform] node 'cleaned':" in text
    assert f"{path}:26: [self_loop] node 'loop':" in text


TINY_FLOW = """
name: tiny
defaults:
  retry: {max_retries: 4, delay_seconds: 2}
  timeout_seconds: 30
limits: {max_run_seconds: 90}
nodes:
  - id: zeta
    transform: make_rows
  - id: sorted
    transform: sort_rows
    upstream: [merged]
    params: {by: [n]}
    retry: {max_retries: 7, backoff: linear}
    timeout_seconds: 12
  - id: merged
    transform: union
    upstream: [zeta, alpha]
  - id: alpha
    transform: make_rows
"""


def test_valid_flow_gives_a_plan_in_topological_order(tmp_path: Path, check) -> None:
    path = write_flow(tmp_path, TINY_FLOW)

    report = check(path)

    assert report.problems == []
    assert report.ok
    plan = report.plan
    assert plan is not None
    assert plan.name == "tiny"
    assert [node.id for node in plan.nodes] == ["alpha", "zeta", "merged", "sorted"]
    assert sorted(plan.graph.edges) == [
        ("alpha", "merged"),
        ("merged", "sorted"),
        ("zeta", "merged"),
    ]
    assert plan.node("merged").spec.upstream == ["zeta", "alpha"]


def test_retry_and_timeout_resolve_node_then_flow_then_settings(
    tmp_path: Path, check, settings: HiveSettings
) -> None:
    base = RetrySettings(max_retries=1, delay_seconds=0.5, backoff="exponential", jitter="full")
    custom = settings.model_copy(
        update={"retry": base, "node_timeout_seconds": 600.0, "max_run_seconds": 3600.0}
    )
    path = write_flow(tmp_path, TINY_FLOW)

    plan = check(path, custom).plan

    assert plan is not None
    # The node's own values win, then the flow defaults, then settings.
    assert plan.node("sorted").retry == RetrySettings(
        max_retries=7, delay_seconds=2.0, backoff="linear", jitter="full"
    )
    assert plan.node("sorted").timeout_seconds == 12
    assert plan.node("alpha").retry == RetrySettings(
        max_retries=4, delay_seconds=2.0, backoff="exponential", jitter="full"
    )
    assert plan.node("alpha").timeout_seconds == 30
    assert plan.max_run_seconds == 90


def test_retry_and_timeout_come_from_settings_when_the_flow_sets_none(
    tmp_path: Path, check, settings: HiveSettings
) -> None:
    base = RetrySettings(max_retries=3, delay_seconds=9.0, backoff="linear", jitter="none")
    custom = settings.model_copy(
        update={"retry": base, "node_timeout_seconds": 77.0, "max_run_seconds": 1234.0}
    )
    path = write_flow(tmp_path, "name: plain\nnodes:\n  - {id: a, transform: make_rows}\n")

    plan = check(path, custom).plan

    assert plan is not None
    assert plan.node("a").retry == base
    assert plan.node("a").timeout_seconds == 77.0
    assert plan.max_run_seconds == 1234.0


def test_shipped_flight_delays_flow_is_valid(
    registry: TransformRegistry, settings: HiveSettings
) -> None:
    plan = load_plan(PROJECT_DIR / "flows" / "flight_delays.yaml", registry, settings)

    assert plan.name == "flight_delays"
    assert len(plan.nodes) == 21
    position = {node.id: index for index, node in enumerate(plan.nodes)}
    for node in plan.nodes:
        assert all(position[up] < position[node.id] for up in node.spec.upstream), node.id
    assert plan.node("flights").retry.max_retries == 2
    assert plan.node("reports").timeout_seconds == 300


def test_flow_files_lists_yaml_files_sorted(tmp_path: Path) -> None:
    for name in ["b.yaml", "a.yml", "notes.txt", "c.yaml"]:
        (tmp_path / name).write_text("name: x\n")

    assert [p.name for p in flow_files(tmp_path, limit=10)] == ["a.yml", "b.yaml", "c.yaml"]


def test_more_flow_files_than_the_limit_is_an_error(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"f{index}.yaml").write_text("name: x\n")

    with pytest.raises(FlowValidationError) as raised:
        flow_files(tmp_path, limit=2)

    [problem] = raised.value.problems
    assert problem == Problem(
        tmp_path, "too_many_files", "3 flow files, over the limit of 2 (HIVE_MAX_FLOW_FILES)."
    )


def test_missing_flows_folder_names_hive_flows_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="HIVE_FLOWS_DIR"):
        flow_files(tmp_path / "absent", limit=10)


def test_every_node_of_a_looping_group_is_a_cycle_node_not_unreachable(
    tmp_path: Path, check
) -> None:
    # Regression: a strongly connected group looping more than one way showed one cycle and
    # reported the nodes off that cycle as "unreachable".
    path = write_flow(
        tmp_path,
        """
        name: knot
        nodes:
          - {id: a, transform: union, upstream: [c, b]}
          - {id: b, transform: union, upstream: [a, c]}
          - {id: c, transform: union, upstream: [a, b]}
        """,
    )

    report = check(path)

    kinds = {problem.kind for problem in report.problems}
    assert "cycle" in kinds
    assert "unreachable" not in kinds


def test_a_bad_top_level_field_does_not_hide_the_graph_problems(tmp_path: Path, check) -> None:
    # Regression: a bad `limits` value stopped every later check, so the unknown transform
    # and the bad host node below went unreported until it was fixed.
    path = write_flow(
        tmp_path,
        """
        name: hidden
        limits: {max_nodes: 100000}
        host: {input_node: nope}
        nodes:
          - {id: a, transform: make_rowz}
        """,
    )

    report = check(path)

    kinds = sorted(problem.kind for problem in report.problems)
    assert kinds == ["host", "schema", "unknown_transform"]
