"""Compile a validated flow plan into a Dagster job: one op per node.

Each op carries the node's retry policy, tags for its flow and transform, and runs its
transform in a child process bounded by the node's timeout (`flowgraph.isolation`).
"""

import os
import socket
from pathlib import Path
from typing import Any

import dagster as dg

from hive_pipelines.defs.flows.resources import FlowStorage, FlowTableIOManager
from hive_pipelines.flowgraph.isolation import (
    NodeCall,
    NodeError,
    TransformFailedError,
    run_isolated,
)
from hive_pipelines.flowgraph.tables import TableSummary
from hive_pipelines.flowgraph.validate import FlowPlan, NodePlan
from hive_pipelines.settings import HiveSettings, RetrySettings
from hive_pipelines.tags import FLOW_TAG, MAX_RUNTIME_TAG, NODE_TAG, TRANSFORM_TAG, WORKER_KEY
from hive_pipelines.transforms.registry import REGISTRY, TransformContext

# Errors that come from the flow or its data, not from chance: retrying cannot help.
PERMANENT_ERRORS = {
    "PathNotAllowedError",
    "TransformInputError",
    "ValidationError",
    "UnknownTransformError",
}

_BACKOFF = {"exponential": dg.Backoff.EXPONENTIAL, "linear": dg.Backoff.LINEAR}
_JITTER = {"plus_minus": dg.Jitter.PLUS_MINUS, "full": dg.Jitter.FULL, "none": None}


def build_flow_job(plan: FlowPlan, settings: HiveSettings) -> dg.JobDefinition:
    """The Dagster job of one flow, with its storage, IO manager and executor bound."""
    ops = {node.id: _build_node_op(plan, node, settings) for node in plan.nodes}
    # Op names are unique per repository, so two flows may not share one: each op is named
    # `<flow>__<node>` and placed in the graph under the node id, which stays the step key.
    dependencies: dict[dg.NodeInvocation, dict[str, dg.DependencyDefinition]] = {
        dg.NodeInvocation(ops[node.id].name, alias=node.id): {
            upstream: dg.DependencyDefinition(upstream) for upstream in node.spec.upstream
        }
        for node in plan.nodes
    }
    graph = dg.GraphDefinition(
        name=plan.name,
        description=plan.spec.description or None,
        node_defs=list(ops.values()),
        dependencies=dependencies,
    )
    storage = FlowStorage(
        base_dir=str(settings.storage_dir) if settings.storage_dir else None,
        compression=settings.parquet_compression,
        preview_rows=settings.preview_rows,
    )
    return graph.to_job(
        name=plan.name,
        description=plan.spec.description or None,
        tags={**plan.spec.tags, FLOW_TAG: plan.name, MAX_RUNTIME_TAG: f"{plan.max_run_seconds:g}"},
        resource_defs={
            "hive_storage": storage,
            "io_manager": FlowTableIOManager(storage=storage),
        },
        executor_def=flow_executor(settings),
        metadata={"flow file": dg.MetadataValue.path(str(plan.path))},
    )


def retry_policy(retry: RetrySettings) -> dg.RetryPolicy:
    return dg.RetryPolicy(
        max_retries=retry.max_retries,
        delay=retry.delay_seconds,
        backoff=_BACKOFF[retry.backoff],
        jitter=_JITTER[retry.jitter],
    )


def flow_executor(settings: HiveSettings) -> dg.ExecutorDefinition:
    """Dagster's own in-process or multiprocess executor, chosen by run config.

    The default comes from settings: with nodes already isolated in forked children, the
    in-process executor is the cheaper way to launch a flow (see docs/benchmarks.md).
    """
    base = dg.multi_or_in_process_executor
    if settings.default_executor == "in_process":
        default: dict[str, Any] = {"in_process": {}}
    else:
        default = {"multiprocess": multiprocess_config(settings)}
    schema = dg.Field(base.config_schema.config_type, default_value=default)
    return dg.ExecutorDefinition(
        name=base.name,
        config_schema=schema,
        executor_creation_fn=base.executor_creation_fn,
        requirements=base.get_requirements,
        description=base.description,
    )


PRELOAD_MODULES = ["hive_pipelines.defs.flows.definitions", "pandas", "pyarrow.dataset"]


def multiprocess_config(settings: HiveSettings) -> dict[str, Any]:
    """Dagster's multiprocess executor, its step processes forked from a server that has
    already imported the project, pandas and pyarrow (each step saves about 1 s)."""
    return {
        "max_concurrent": settings.max_concurrent_nodes,
        "start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}},
    }


def _build_node_op(plan: FlowPlan, node: NodePlan, settings: HiveSettings) -> dg.OpDefinition:
    transform = REGISTRY.get(node.spec.transform)
    flow, spec = plan.name, node.spec
    description = spec.description or f"{transform.name}: {transform.description}"

    @dg.op(
        name=f"{flow}__{spec.id}",
        description=description,
        ins={up: dg.In(description=f"The output of node {up!r}.") for up in spec.upstream},
        out=dg.Out(TableSummary),
        retry_policy=retry_policy(node.retry),
        tags={FLOW_TAG: flow, NODE_TAG: spec.id, TRANSFORM_TAG: transform.name},
        config_schema={"params": dg.Field(dg.Permissive(), default_value={})},
        required_resource_keys={"hive_storage"},
    )
    def node_op(context: dg.OpExecutionContext, **inputs: Path) -> dg.Output[TableSummary]:
        params = {**spec.params, **context.op_config["params"]}
        try:
            transform.params_model.model_validate(params)
        except ValueError as exc:
            raise dg.Failure(
                f"Run config params for node {spec.id!r} of flow {flow!r} do not fit transform "
                f"{transform.name!r}: {exc}",
                allow_retries=False,
            ) from None

        storage: FlowStorage = context.resources.hive_storage
        call = NodeCall(
            context=TransformContext(
                flow=flow,
                node=spec.id,
                run_id=context.run_id,
                inputs=tuple(spec.upstream),
                data_roots=settings.resolved_data_roots,
                output_dir=settings.resolved_output_dir,
            ),
            transform=transform.name,
            params=params,
            input_paths=tuple(inputs[upstream] for upstream in spec.upstream),
            output_path=storage.node_output_path(context.run_id, spec.id),
            timeout_seconds=node.timeout_seconds,
            compression=storage.compression,
            preview_rows=storage.preview_rows,
        )
        try:
            summary = run_isolated(call, settings.timeout_grace_seconds)
        except NodeError as exc:
            metadata: dict[str, Any] = {
                "timeout_seconds": node.timeout_seconds,
                WORKER_KEY: worker_name(),
            }
            metadata["error_class"] = type(exc).__name__
            if isinstance(exc, TransformFailedError):
                metadata["error_class"] = exc.error_class
                metadata["traceback"] = dg.MetadataValue.text(exc.child_traceback)
            permanent = metadata["error_class"] in PERMANENT_ERRORS
            raise dg.Failure(str(exc), metadata=metadata, allow_retries=not permanent) from None

        metadata = {**output_metadata(summary), WORKER_KEY: dg.MetadataValue.text(worker_name())}
        return dg.Output(summary, metadata=metadata)

    return node_op


def worker_name() -> str:
    """The worker that ran a node: host name and process id of the op's process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def output_metadata(summary: TableSummary) -> dict[str, dg.MetadataValue]:
    """Row count, columns and types, and a small preview, for the UI."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, kind) for name, kind in summary.columns.items()]
    )
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(summary.rows),
        "dagster/column_schema": dg.MetadataValue.table_schema(schema),
        "path": dg.MetadataValue.path(summary.path),
        "size_bytes": dg.MetadataValue.int(summary.size_bytes),
    }
    if summary.preview:
        names = list(summary.preview[0])
        preview_schema = dg.TableSchema(columns=[dg.TableColumn(n, "string") for n in names])
        metadata["preview"] = dg.MetadataValue.table(
            records=[dg.TableRecord(row) for row in summary.preview], schema=preview_schema
        )
    return metadata
