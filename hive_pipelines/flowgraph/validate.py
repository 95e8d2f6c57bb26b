"""Graph checks on a parsed flow, and the validated plan that the compiler turns into a job.

The flow is a networkx DiGraph with an edge from each upstream node to the node that reads
it. Every check runs and every problem is kept, so one report shows all that is wrong.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import networkx as nx

from hive_pipelines.flowgraph.loader import ParsedFlow, params_problems, parse_flow_file
from hive_pipelines.flowgraph.problems import FlowValidationError, Problem
from hive_pipelines.flowgraph.spec import FlowSpec, NodeSpec, RetrySpec
from hive_pipelines.settings import HiveSettings, RetrySettings
from hive_pipelines.transforms.registry import TransformRegistry


@dataclass(frozen=True)
class NodePlan:
    """A node with its retry policy and timeout resolved from node, flow and settings."""

    spec: NodeSpec
    retry: RetrySettings
    timeout_seconds: float

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class FlowPlan:
    """A flow that passed every check, with its nodes in execution order."""

    path: Path
    spec: FlowSpec
    graph: nx.DiGraph
    nodes: tuple[NodePlan, ...]
    max_run_seconds: float

    @property
    def name(self) -> str:
        return self.spec.name

    def node(self, node_id: str) -> NodePlan:
        return next(node for node in self.nodes if node.id == node_id)


@dataclass
class FlowReport:
    """The outcome of validating one file: a plan, or the problems that prevent one."""

    path: Path
    name: str | None
    plan: FlowPlan | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.problems


def validate_flow_file(
    path: Path, registry: TransformRegistry, settings: HiveSettings
) -> FlowReport:
    """Parse and check one flow file; never raises for anything wrong with the file."""
    parsed = parse_flow_file(path, settings.max_flow_file_bytes)
    problems = list(parsed.problems)
    spec = parsed.spec
    if spec is not None:
        problems.extend(check_graph(parsed, spec, registry, settings))
    plan = None
    if spec is not None and not problems:
        plan = _plan(path, spec, settings)
    return FlowReport(path, spec.name if spec else None, plan, problems)


def validate_flows(
    paths: list[Path], registry: TransformRegistry, settings: HiveSettings
) -> list[FlowReport]:
    """Validate each file, then refuse every file of a flow name that several files claim:
    which one would run must never depend on how the files sort."""
    reports = [validate_flow_file(path, registry, settings) for path in paths]
    owners: dict[str, list[Path]] = {}
    for report in reports:
        if report.name is not None:
            owners.setdefault(report.name, []).append(report.path)
    for report in reports:
        claims = owners.get(report.name or "", [])
        if len(claims) > 1:
            others = ", ".join(str(path) for path in claims if path != report.path)
            message = (
                f"Flow name {report.name!r} is also used by {others}; names must be unique, "
                "so none of these files runs until one is renamed."
            )
            report.problems.append(Problem(report.path, "duplicate_flow", message))
            report.plan = None
    return reports


def flow_files(directory: Path, limit: int) -> list[Path]:
    """The flow files of a folder, sorted; more than `limit` of them is an error."""
    if not directory.is_dir():
        raise FileNotFoundError(f"The flows folder {directory} does not exist (HIVE_FLOWS_DIR).")
    files = sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"})
    if len(files) > limit:
        raise FlowValidationError(
            [
                Problem(
                    directory,
                    "too_many_files",
                    f"{len(files)} flow files, over the limit of {limit} (HIVE_MAX_FLOW_FILES).",
                )
            ]
        )
    return files


def load_plan(path: Path, registry: TransformRegistry, settings: HiveSettings) -> FlowPlan:
    """The plan of one flow file, or FlowValidationError listing every problem."""
    report = validate_flow_file(path, registry, settings)
    if report.plan is None:
        raise FlowValidationError(report.problems)
    return report.plan


def check_graph(
    parsed: ParsedFlow, spec: FlowSpec, registry: TransformRegistry, settings: HiveSettings
) -> list[Problem]:
    """Every graph-level problem of a flow whose fields parsed."""
    path, lines = parsed.path, parsed.node_lines
    problems: list[Problem] = []

    def add(kind: str, message: str, node: str | None = None) -> None:
        problems.append(Problem(path, kind, message, node=node, line=lines.get(node or "")))

    known_ids = {node.id for node in spec.nodes} | parsed.invalid_node_ids
    counts = Counter(node.id for node in spec.nodes)
    for node_id, count in counts.items():
        if count > 1:
            at = ", ".join(str(line) for line in parsed.id_lines.get(node_id, []))
            where = f" (at lines {at})" if at else ""
            add(
                "duplicate_id",
                f"The id is used by {count} nodes{where}; ids must be unique.",
                node_id,
            )

    graph = nx.DiGraph()
    graph.add_nodes_from(node.id for node in spec.nodes)
    for node in spec.nodes:
        problems.extend(_node_problems(parsed, node, registry, known_ids))
        for upstream in node.upstream:
            if upstream in graph:
                graph.add_edge(upstream, node.id)

    for node_id in sorted(nx.nodes_with_selfloops(graph)):
        add("self_loop", "The node lists itself as its own upstream.", node_id)
    graph.remove_edges_from(list(nx.selfloop_edges(graph)))
    cycles = _cycles(graph)
    for cycle in cycles:
        add("cycle", "The nodes form a cycle: " + " -> ".join([*cycle, cycle[0]]) + ".", cycle[0])

    sources = [n for n, degree in graph.in_degree() if degree == 0]
    reachable = set(sources).union(*(nx.descendants(graph, s) for s in sources))
    # Every node of a strongly connected group is on some cycle, even if not on the one shown.
    in_cycle = {n for c in nx.strongly_connected_components(graph) if len(c) > 1 for n in c}
    for node in spec.nodes:
        if node.id not in reachable and node.id not in in_cycle and node.id in graph:
            add(
                "unreachable",
                "The node is not reachable from any source node (one with no "
                "upstream): something it depends on is in a cycle or missing.",
                node.id,
            )
    problems.extend(_limit_problems(path, spec, graph, settings, acyclic=not cycles))
    problems.extend(_host_problems(path, spec, registry))
    return problems


def _node_problems(
    parsed: ParsedFlow, node: NodeSpec, registry: TransformRegistry, known_ids: set[str]
) -> list[Problem]:
    path, line = parsed.path, parsed.node_lines.get(node.id)
    problems: list[Problem] = []

    def add(kind: str, message: str) -> None:
        problems.append(Problem(path, kind, message, node=node.id, line=line))

    for upstream, count in Counter(node.upstream).items():
        if count > 1:
            add("duplicate_upstream", f"Upstream {upstream!r} is listed {count} times.")
        if upstream not in known_ids:
            add("unknown_upstream", f"Upstream {upstream!r} is not a node of this flow.")

    if node.transform not in registry:
        hint = registry.suggest(node.transform)
        tip = f" Did you mean {hint!r}?" if hint else " `hive transforms` lists them."
        add("unknown_transform", f"Transform {node.transform!r} is not registered.{tip}")
        return problems

    transform = registry.get(node.transform)
    if not transform.accepts(len(node.upstream)):
        add(
            "arity",
            f"Transform {transform.name!r} takes {transform.arity_text}, "
            f"but the node lists {len(node.upstream)}.",
        )
    problems.extend(params_problems(path, node.id, transform.params_model, node.params, line))
    return problems


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle per strongly connected component: bounded, unlike listing every cycle."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        start = min(component)
        edges = nx.find_cycle(graph.subgraph(component), source=start)
        cycles.append([edge[0] for edge in edges])
    return sorted(cycles)


def _limit_problems(
    path: Path, spec: FlowSpec, graph: nx.DiGraph, settings: HiveSettings, acyclic: bool
) -> list[Problem]:
    problems = []
    for field, ceiling, env in (
        ("max_nodes", settings.max_nodes, "HIVE_MAX_NODES"),
        ("max_depth", settings.max_depth, "HIVE_MAX_DEPTH"),
    ):
        value = getattr(spec.limits, field)
        if value is not None and value > ceiling:
            message = f"limits.{field} is {value}, over the ceiling of {ceiling} set by {env}."
            problems.append(Problem(path, "limit", message))

    max_nodes = min(spec.limits.max_nodes or settings.max_nodes, settings.max_nodes)
    if len(spec.nodes) > max_nodes:
        message = f"The flow has {len(spec.nodes)} nodes, over its limit of {max_nodes}."
        problems.append(Problem(path, "too_many_nodes", message))

    max_depth = min(spec.limits.max_depth or settings.max_depth, settings.max_depth)
    if acyclic and graph.number_of_nodes():
        longest = nx.dag_longest_path(graph)
        if len(longest) > max_depth:
            chain = " -> ".join(longest)
            message = (
                f"The flow is {len(longest)} nodes deep, over its limit of {max_depth}: {chain}."
            )
            problems.append(Problem(path, "too_deep", message))
    return problems


RESERVED_FLOW_NAMES = {"requests"}


def _host_problems(path: Path, spec: FlowSpec, registry: TransformRegistry) -> list[Problem]:
    """The host section must name a source node whose transform takes the input param;
    the schedule must be a five-field cron in a real time zone."""
    problems = []
    if spec.name in RESERVED_FLOW_NAMES:
        message = f"The flow name {spec.name!r} is reserved for the inbox's requests folder."
        problems.append(Problem(path, "schema", message))
    node_id = spec.host.input_node
    if node_id is not None:
        node = next((n for n in spec.nodes if n.id == node_id), None)
        if node is None:
            message = f"host.input_node {node_id!r} is not a node of this flow."
            problems.append(Problem(path, "host", message))
        elif node.upstream:
            message = f"host.input_node {node_id!r} must be a source node (no upstream)."
            problems.append(Problem(path, "host", message, node=node_id))
        elif node.transform in registry:
            fields = registry.get(node.transform).params_model.model_fields
            wanted = [spec.host.input_param, spec.host.input_root_param]
            for param in (p for p in wanted if p is not None and p not in fields):
                message = f"Transform {node.transform!r} has no param {param!r} for the input."
                problems.append(Problem(path, "host", message, node=node_id))
    if spec.schedule is not None:
        problems.extend(_schedule_problems(path, spec))
    return problems


def _schedule_problems(path: Path, spec: FlowSpec) -> list[Problem]:
    assert spec.schedule is not None
    problems = []
    if len(spec.schedule.cron.split()) != 5:
        message = f"schedule.cron {spec.schedule.cron!r} must have five fields (m h dom mon dow)."
        problems.append(Problem(path, "schedule", message))
    else:
        # The check Dagster's ScheduleDefinition makes; a cron it refuses would stop every
        # definition from loading. Imported here so validating flows needs Dagster only then.
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(spec.schedule.cron):
            message = f"schedule.cron {spec.schedule.cron!r} is not a valid cron expression."
            problems.append(Problem(path, "schedule", message))
    try:
        ZoneInfo(spec.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"schedule.timezone {spec.schedule.timezone!r} is not a known time zone."
        problems.append(Problem(path, "schedule", message))
    return problems


def _plan(path: Path, spec: FlowSpec, settings: HiveSettings) -> FlowPlan:
    graph = nx.DiGraph()
    for node in spec.nodes:
        graph.add_node(node.id)
        graph.add_edges_from((upstream, node.id) for upstream in node.upstream)

    by_id = {node.id: node for node in spec.nodes}
    order = list(nx.lexicographical_topological_sort(graph))
    flow_timeout = spec.defaults.timeout_seconds or settings.node_timeout_seconds
    nodes = tuple(
        NodePlan(
            spec=by_id[node_id],
            retry=_resolve_retry(settings.retry, spec.defaults.retry, by_id[node_id].retry),
            timeout_seconds=by_id[node_id].timeout_seconds or flow_timeout,
        )
        for node_id in order
    )
    max_run = spec.limits.max_run_seconds or settings.max_run_seconds
    return FlowPlan(path, spec, graph, nodes, max_run)


def _resolve_retry(base: RetrySettings, *overrides: RetrySpec | None) -> RetrySettings:
    values = base.model_dump()
    for override in overrides:
        if override is not None:
            values.update(override.model_dump(exclude_none=True))
    return RetrySettings.model_validate(values)
