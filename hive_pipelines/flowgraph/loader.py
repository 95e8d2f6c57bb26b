"""Reading flow files safely: size, encoding, YAML syntax and field types.

Every problem is collected with its file, node and line so one pass reports all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hive_pipelines.flowgraph.problems import Problem
from hive_pipelines.flowgraph.spec import FlowSpec, NodeSpec


@dataclass
class ParsedFlow:
    """A flow file after parsing: the spec when its fields are valid, and what was wrong."""

    path: Path
    spec: FlowSpec | None
    problems: list[Problem] = field(default_factory=list)
    node_lines: dict[str, int] = field(default_factory=dict)
    id_lines: dict[str, list[int]] = field(default_factory=dict)
    invalid_node_ids: set[str] = field(default_factory=set)


def parse_flow_file(path: Path, max_bytes: int) -> ParsedFlow:
    """Read one flow file and check its fields; graph checks come later."""
    text, problem = _read_text(path, max_bytes)
    if problem is not None:
        return ParsedFlow(path, None, [problem])
    return parse_flow_text(text or "", path)


def parse_flow_text(text: str, path: Path) -> ParsedFlow:
    try:
        data, item_lines = _load_yaml(text)
    except yaml.YAMLError as exc:
        return ParsedFlow(path, None, [_yaml_problem(path, exc)])
    except _AliasError as exc:
        return ParsedFlow(path, None, [Problem(path, "yaml_size", str(exc), line=exc.line)])
    except _DuplicateKeyError as exc:
        return ParsedFlow(path, None, [Problem(path, "yaml_syntax", str(exc), line=exc.line)])

    if data is None:
        return ParsedFlow(path, None, [Problem(path, "empty", "The file holds no YAML document.")])
    if not isinstance(data, dict):
        kind = type(data).__name__
        message = f"The top level must be a mapping with name and nodes, not a {kind}."
        return ParsedFlow(path, None, [Problem(path, "schema", message, line=1)])
    return _check_fields(path, data, item_lines)


def _check_fields(path: Path, data: dict[str, Any], item_lines: list[int]) -> ParsedFlow:
    parsed = ParsedFlow(path, None)
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        raw_nodes = []
        message = "`nodes` must be a list of nodes, each with an id and a transform."
        parsed.problems.append(Problem(path, "schema", message))
    elif not raw_nodes:
        parsed.problems.append(Problem(path, "schema", "The flow has no nodes."))

    header: FlowSpec | None = None
    try:
        header = FlowSpec.model_validate({**data, "nodes": []})
    except ValidationError as exc:
        parsed.problems.extend(_field_problems(path, exc, prefix=""))
        # Check the rest of the flow with the bad top-level fields left at their defaults,
        # so one bad field does not hide the other problems.
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
        try:
            header = FlowSpec.model_validate(
                {key: value for key, value in data.items() if key not in bad} | {"nodes": []}
            )
        except ValidationError:
            header = None

    nodes: list[NodeSpec] = []
    for index, raw in enumerate(raw_nodes):
        line = item_lines[index] if index < len(item_lines) else None
        node_id = raw.get("id") if isinstance(raw, dict) else None
        label = node_id if isinstance(node_id, str) else None
        if label is not None and line is not None:
            parsed.node_lines.setdefault(label, line)
            parsed.id_lines.setdefault(label, []).append(line)
        try:
            nodes.append(NodeSpec.model_validate(raw))
        except ValidationError as exc:
            if label is not None:
                parsed.invalid_node_ids.add(label)
            prefix = f"nodes[{index}]."
            parsed.problems.extend(_field_problems(path, exc, prefix, node=label, line=line))

    if header is not None:
        parsed.spec = header.model_copy(update={"nodes": nodes})
    return parsed


def _field_problems(
    path: Path,
    exc: ValidationError,
    prefix: str,
    node: str | None = None,
    line: int | None = None,
    kind: str = "schema",
) -> list[Problem]:
    problems = []
    for error in exc.errors():
        where = prefix + ".".join(str(part) for part in error["loc"])
        where = where.rstrip(".") or "(top level)"
        message = f"field `{where}`: {error['msg']}"
        if error["type"] == "extra_forbidden":
            message = f"field `{where}` is not allowed here (is it misspelt?)"
        problems.append(Problem(path, kind, message, node=node, line=line))
    return problems


def params_problems(
    path: Path, node: str, model: type[BaseModel], params: dict[str, Any], line: int | None
) -> list[Problem]:
    """Problems with a node's params against its transform's params model."""
    try:
        model.model_validate(params)
    except ValidationError as exc:
        return _field_problems(path, exc, "params.", node=node, line=line, kind="params")
    return []


def _read_text(path: Path, max_bytes: int) -> tuple[str | None, Problem | None]:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            message = (
                f"The file is {size:,} bytes, over the {max_bytes:,} byte limit for flow files "
                "(HIVE_MAX_FLOW_FILE_BYTES)."
            )
            return None, Problem(path, "too_large", message)
        raw = path.read_bytes()[: max_bytes + 1]
    except OSError as exc:
        return None, Problem(path, "unreadable", f"The file cannot be read: {exc.strerror}.")

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"The file is not UTF-8: byte {exc.start} (0x{raw[exc.start]:02x}) is invalid."
        return None, Problem(path, "encoding", message, line=line)

    if not text.strip():
        return None, Problem(path, "empty", "The file is empty.")
    return text.removeprefix("\ufeff"), None


MAX_YAML_ITEMS = 100_000


class FlowYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans, so a key such as
    `on` or a value such as `NO` (Norway's airport code) stays a string."""


FlowYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _AliasError(Exception):
    def __init__(self, message: str, line: int) -> None:
        self.line = line
        super().__init__(message)


def _load_yaml(text: str) -> tuple[Any, list[int]]:
    """Parse one YAML document, returning the data and the line of each `nodes` item."""
    loader = FlowYamlLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, []
        _check_expanded_size(root)
        _reject_duplicate_keys(root)
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    return data, _node_item_lines(root)


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, line: int, first: int) -> None:
        self.line = line
        super().__init__(
            f"The key {key!r} appears twice in one mapping (first at line {first}); YAML "
            "would silently keep only the last one."
        )


def _reject_duplicate_keys(root: yaml.Node) -> None:
    """Refuse a mapping that repeats a key: a second `params:` must not win in silence."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[str, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    line = key.start_mark.line + 1
                    if key.value in lines:
                        raise _DuplicateKeyError(key.value, line, lines[key.value])
                    lines[key.value] = line
        stack.extend(_children(node))


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse recursive aliases and documents that aliases blow up past MAX_YAML_ITEMS.

    Aliases share composed nodes, so sizes are memoised per node: linear in the file, even
    for a "billion laughs" document whose expansion would not fit in memory.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_ITEMS:
                message = (
                    f"The YAML expands to more than {MAX_YAML_ITEMS:,} items through its "
                    "aliases; flow files must stay small."
                )
                raise _AliasError(message, node.start_mark.line + 1)
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise _AliasError("The YAML holds a recursive alias.", node.start_mark.line + 1)
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _node_item_lines(root: yaml.Node) -> list[int]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "nodes"
            and isinstance(value, yaml.SequenceNode)
        ):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"The YAML does not parse: {what}" + (f" ({context})" if context else "") + "."
    return Problem(path, "yaml_syntax", message, line=line)
