"""Compiling flow files into Dagster jobs: ops, dependencies, retries, tags, placeholders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from hive_pipelines.defs.flows.compiler import (
    FLOW_TAG,
    MAX_RUNTIME_TAG,
    NODE_TAG,
    TRANSFORM_TAG,
)
from hive_pipelines.defs.flows.definitions import (
    INVALID_TAG,
    build_flow_definitions,
    build_flow_job_by_name,
)
from hive_pipelines.flowgraph.problems import FlowValidationError
from hive_pipelines.settings import HiveSettings, get_settings

EXP, LINEAR = dg.Backoff.EXPONENTIAL, dg.Backoff.LINEAR
PLUS_MINUS = dg.Jitter.PLUS_MINUS


def write_flow(folder: Path, name: str, nodes: list[dict[str, Any]], **fields: Any) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **fields, "nodes": nodes}, sort_keys=False))
    return path


def fresh_settings() -> HiveSettings:
    get_settings.cache_clear()
    return get_settings()


def upstreams(job: dg.JobDefinition, node: str) -> dict[str, list[str]]:
    """Each input of a node, and the nodes whose outputs feed it."""
    structure = job.graph.dependency_structure
    return {
        node_input.input_name: [output.node_name for output in outputs]
        for node_input, outputs in structure.input_to_upstream_outputs_for_node(node).items()
    }


def op_defs(job: dg.JobDefinition) -> dict[str, dg.OpDefinition]:
    ops = {node.name: node.definition for node in job.graph.nodes}
    assert all(isinstance(op, dg.OpDefinition) for op in ops.values())
    return {name: op for name, op in ops.items() if isinstance(op, dg.OpDefinition)}


SMALL_NODES: list[dict[str, Any]] = [
    {"id": "left", "transform": "make_rows", "params": {"rows": 2}},
    {
        "id": "right",
        "transform": "make_rows",
        "description": "The right-hand rows.",
        "retry": {"delay_seconds": 0.5},
    },
    {
        "id": "flaky",
        "transform": "fail_then_succeed",
        "upstream": ["left"],
        "params": {"counter_file": "/nonexistent/counter"},
        "retry": {"max_retries": 7, "backoff": "linear", "jitter": "none"},
    },
    {"id": "merged", "transform": "union", "upstream": ["flaky", "right"]},
]


def test_compiled_job_shape(hive_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVE_RETRY__DELAY_SECONDS", "3")
    write_flow(
        hive_env,
        "small",
        SMALL_NODES,
        description="A small flow.",
        defaults={"retry": {"max_retries": 4}},
        limits={"max_run_seconds": 120},
        tags={"team": "data"},
    )

    job = build_flow_definitions(fresh_settings()).get_job_def("small")

    assert job.name == "small"
    assert job.description == "A small flow."
    assert sorted(node.name for node in job.graph.nodes) == ["flaky", "left", "merged", "right"]
    assert upstreams(job, "left") == {}
    assert upstreams(job, "right") == {}
    assert upstreams(job, "flaky") == {"left": ["left"]}
    assert upstreams(job, "merged") == {"flaky": ["flaky"], "right": ["right"]}
    assert job.tags == {"team": "data", FLOW_TAG: "small", MAX_RUNTIME_TAG: "120"}

    ops = op_defs(job)
    # Node override beats flow default (max_retries 4) beats settings (delay 3 s).
    assert ops["left"].retry_policy == dg.RetryPolicy(
        max_retries=4, delay=3.0, backoff=EXP, jitter=PLUS_MINUS
    )
    assert ops["right"].retry_policy == dg.RetryPolicy(
        max_retries=4, delay=0.5, backoff=EXP, jitter=PLUS_MINUS
    )
    assert ops["flaky"].retry_policy == dg.RetryPolicy(
        max_retries=7, delay=3.0, backoff=LINEAR, jitter=None
    )
    assert ops["merged"].retry_policy == dg.RetryPolicy(
        max_retries=4, delay=3.0, backoff=EXP, jitter=PLUS_MINUS
    )

    transforms = {"left": "make_rows", "right": "make_rows"}
    transforms |= {"flaky": "fail_then_succeed", "merged": "union"}
    for node_id, transform in transforms.items():
        assert ops[node_id].tags == {
            FLOW_TAG: "small",
            NODE_TAG: node_id,
            TRANSFORM_TAG: transform,
        }
    assert ops["right"].description == "The right-hand rows."
    assert ops["left"].description == "make_rows: A small table 0..rows-1."
    assert ops["merged"].description is not None
    assert ops["merged"].description.startswith("union: Stack the inputs' rows")
    assert set(ops["merged"].ins) == {"flaky", "right"}
    assert {"hive_storage", "io_manager"} <= set(job.resource_defs)


def test_settings_fill_what_the_flow_leaves_out(hive_env: Path) -> None:
    write_flow(hive_env, "plain", [{"id": "only", "transform": "make_rows"}])

    job = build_flow_definitions(fresh_settings()).get_job_def("plain")

    op = op_defs(job)["only"]
    assert op.retry_policy == dg.RetryPolicy(
        max_retries=1, delay=1.0, backoff=EXP, jitter=PLUS_MINUS
    )
    assert job.tags[MAX_RUNTIME_TAG] == "3600"
    assert job.description is None


def test_production_profile_defaults_reach_the_job(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVE_PROFILE", "production")
    write_flow(
        hive_env,
        "prod",
        [{"id": "only", "transform": "make_rows"}],
        defaults={"retry": {"jitter": "full"}},
    )

    job = build_flow_definitions(fresh_settings()).get_job_def("prod")

    op = op_defs(job)["only"]
    assert op.retry_policy == dg.RetryPolicy(
        max_retries=3, delay=10.0, backoff=EXP, jitter=dg.Jitter.FULL
    )
    assert job.tags[MAX_RUNTIME_TAG] == "21600"


def test_compiled_job_runs_and_hands_tables_between_ops(
    hive_env: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    counter = tmp_path / "counter"
    nodes = [dict(node) for node in SMALL_NODES]
    nodes[2] = {**nodes[2], "params": {"counter_file": str(counter), "fail_times": 0}}
    write_flow(hive_env, "small", nodes)
    job = build_flow_definitions(fresh_settings()).get_job_def("small")

    result = job.execute_in_process(instance=instance)

    assert result.success
    merged = result.output_for_node("merged")
    assert merged.rows == 1 + 3
    assert list(merged.columns) == ["attempt", "pid", "n", "node"]
    storage = Path(instance.storage_directory()) / "hive" / result.run_id
    assert sorted(path.name for path in storage.iterdir()) == [
        "flaky.parquet",
        "left.parquet",
        "merged.parquet",
        "right.parquet",
    ]
    assert merged.path == str(storage / "merged.parquet")


BROKEN_NODES: list[dict[str, Any]] = [
    {"id": "a", "transform": "make_rows"},
    {"id": "b", "transform": "make_rowz", "upstream": ["a"]},
    {"id": "c", "transform": "union", "upstream": ["d", "a"]},
    {"id": "d", "transform": "union", "upstream": ["c", "a"]},
]


def test_invalid_flow_becomes_a_failing_placeholder(
    hive_env: Path, instance: dg.DagsterInstance
) -> None:
    write_flow(hive_env, "good", [{"id": "only", "transform": "make_rows"}])
    broken = write_flow(hive_env, "broken", BROKEN_NODES)
    (hive_env / "garbled.yaml").write_text("name: garbled\nnodes: [\n")

    defs = build_flow_definitions(fresh_settings())

    good = defs.get_job_def("good")
    assert INVALID_TAG not in good.tags
    assert [node.name for node in good.graph.nodes] == ["only"]

    placeholder = defs.get_job_def("broken")
    assert placeholder.tags == {FLOW_TAG: "broken", INVALID_TAG: "true"}
    assert [node.name for node in placeholder.graph.nodes] == ["flow_is_invalid"]
    description = placeholder.description or ""
    assert description.startswith(f"INVALID flow file {broken}; fix it to run this flow.")
    report_lines = [
        f"{broken}:5: [unknown_transform] node 'b': Transform 'make_rowz' is not registered. "
        "Did you mean 'make_rows'?",
        f"{broken}:9: [cycle] node 'c': The nodes form a cycle: c -> d -> c.",
    ]
    for line in report_lines:
        assert line in description

    result = placeholder.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "flow_is_invalid"
    failure_data = failure.step_failure_data.user_failure_data
    assert failure_data is not None
    assert failure_data.description is not None
    assert failure_data.description.startswith(f"Flow file {broken} is invalid:\n")
    for line in report_lines:
        assert line in failure_data.description
    retries = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert retries == []

    # A file whose name cannot be read still gets a placeholder, named after the file.
    garbled = defs.get_job_def("invalid_garbled_yaml")
    assert garbled.tags[INVALID_TAG] == "true"
    assert "[yaml_syntax]" in (garbled.description or "")


def test_two_files_claiming_a_name_are_both_refused_with_placeholders(hive_env: Path) -> None:
    # Regression: the file that sorted first won the name, silently swapping the flow.
    write_flow(hive_env, "a_first", [{"id": "only", "transform": "make_rows"}])
    second = hive_env / "b_second.yaml"
    second.write_text(
        yaml.safe_dump({"name": "a_first", "nodes": [{"id": "x", "transform": "make_rows"}]})
    )

    defs = build_flow_definitions(fresh_settings())

    first = defs.get_job_def("a_first")
    assert first.tags == {FLOW_TAG: "a_first", INVALID_TAG: "true"}
    assert f"Flow name 'a_first' is also used by {second}" in (first.description or "")
    placeholder = defs.get_job_def("invalid_b_second_yaml")
    assert placeholder.tags == {FLOW_TAG: "invalid_b_second_yaml", INVALID_TAG: "true"}
    assert "[duplicate_flow]" in (placeholder.description or "")
    assert "Flow name 'a_first' is also used by" in (placeholder.description or "")


def test_job_by_name_rebuilds_valid_flows_and_refuses_invalid_ones(hive_env: Path) -> None:
    write_flow(hive_env, "good", [{"id": "only", "transform": "make_rows"}])
    write_flow(hive_env, "broken", BROKEN_NODES)
    fresh_settings()

    assert build_flow_job_by_name("good").name == "good"
    with pytest.raises(FlowValidationError) as caught:
        build_flow_job_by_name("broken")
    assert {problem.kind for problem in caught.value.problems} == {"unknown_transform", "cycle"}
    with pytest.raises(KeyError, match="No flow named 'absent'"):
        build_flow_job_by_name("absent")


def test_several_invalid_flow_files_load_together_with_the_valid_ones(hive_env: Path) -> None:
    # Regression: every placeholder job used one op name, so two invalid files made the
    # whole code location fail to load ("Conflicting definitions ... flow_is_invalid").
    write_flow(hive_env, "good", [{"id": "only", "transform": "make_rows"}])
    write_flow(hive_env, "broken", BROKEN_NODES)
    (hive_env / "garbled.yaml").write_text("name: garbled\nnodes: [\n")

    defs = build_flow_definitions(fresh_settings())
    dg.Definitions.validate_loadable(defs)

    repository = defs.get_repository_def()
    assert {"good", "broken", "invalid_garbled_yaml"} <= set(repository.job_names)


def test_an_error_of_the_data_is_not_retried(hive_env: Path, instance: dg.DagsterInstance) -> None:
    # A missing column cannot appear on a retry: the node fails at its first attempt even
    # with retries left, while a chance error (RuntimeError) would be retried.
    nodes = [
        {"id": "rows", "transform": "make_rows"},
        {
            "id": "pick",
            "transform": "select_columns",
            "upstream": ["rows"],
            "params": {"columns": ["nope"]},
        },
    ]
    write_flow(hive_env, "picky", nodes, defaults={"retry": {"max_retries": 2, "delay_seconds": 0}})
    job = build_flow_definitions(fresh_settings()).get_job_def("picky")

    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    kinds = [event.event_type_value for event in result.all_node_events if event.step_key == "pick"]
    assert "STEP_UP_FOR_RETRY" not in kinds
    [failure] = result.get_step_failure_events()
    assert "TransformInputError" in (failure.step_failure_data.user_failure_data.description or "")
