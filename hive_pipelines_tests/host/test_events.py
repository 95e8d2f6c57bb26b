"""Events from inbox entries: identity, validation against the flow, and their run config."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hive_pipelines.flowgraph.validate import FlowPlan, load_plan
from hive_pipelines.host.events import (
    EventRejected,
    EventRequest,
    file_event,
    read_request,
    request_event,
    run_config,
)
from hive_pipelines.host.inbox import Entry, backlog
from hive_pipelines.settings import HiveSettings
from hive_pipelines.transforms.registry import TransformRegistry
from hive_pipelines_tests.defs.host.support import (
    DROPS_FLOW,
    NUMBERS_FLOW,
    use_settings,
    write_flow,
)

GOOD = b'{"a": 1}\n'


@pytest.fixture
def drops(hive_env: Path, settings: HiveSettings, registry: TransformRegistry) -> FlowPlan:
    return load_plan(write_flow(hive_env, DROPS_FLOW), registry, settings)


@pytest.fixture
def numbers(hive_env: Path, settings: HiveSettings, registry: TransformRegistry) -> FlowPlan:
    return load_plan(write_flow(hive_env, NUMBERS_FLOW), registry, settings)


def entry(settings: HiveSettings, stream: str, name: str, data: bytes) -> Entry:
    """Write a file into the inbox and read it back as the inbox lists it."""
    folder = settings.resolved_inbox_dir / stream
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    [found] = [
        e
        for e in backlog(settings.resolved_inbox_dir, stream, None, 100).entries
        if e.path.name == name
    ]
    return found


def request_entry(settings: HiveSettings, request: dict[str, object]) -> Entry:
    return entry(settings, "requests", "ask.json", json.dumps(request).encode())


def rejected(kind: str, call: object, *args: object) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.kind == kind, caught.value.reason
    return caught.value


def make_request(**fields: object) -> EventRequest:
    return EventRequest.model_validate({"id": "r1", "flow": "drops", **fields})


# Reading requests ------------------------------------------------------------------------


def test_read_request_returns_the_request_with_defaults(settings: HiveSettings) -> None:
    found = request_entry(settings, {"id": "hour-1", "flow": "numbers"})

    request = read_request(found, settings.max_request_bytes)

    assert request == EventRequest(id="hour-1", flow="numbers", params={}, inputs=[])


def test_read_request_rejects_bytes_that_are_not_utf8(settings: HiveSettings) -> None:
    found = entry(settings, "requests", "a.json", b'{"id": "\xe9"}')

    error = rejected("encoding", read_request, found, settings.max_request_bytes)

    assert "byte 8" in error.reason


def test_read_request_rejects_text_that_is_not_json(settings: HiveSettings) -> None:
    found = entry(settings, "requests", "a.json", b'{\n"id": }')

    error = rejected("json", read_request, found, settings.max_request_bytes)

    assert "line 2" in error.reason


def test_read_request_rejects_an_unknown_field(settings: HiveSettings) -> None:
    found = request_entry(settings, {"id": "r1", "flow": "numbers", "priority": 1})

    error = rejected("schema", read_request, found, settings.max_request_bytes)

    assert "field `priority`" in error.reason


def test_read_request_rejects_an_id_that_could_be_a_path(settings: HiveSettings) -> None:
    found = request_entry(settings, {"id": "../escape", "flow": "numbers"})

    error = rejected("schema", read_request, found, settings.max_request_bytes)

    assert "field `id`" in error.reason


def test_read_request_rejects_a_request_over_max_request_bytes(settings: HiveSettings) -> None:
    found = request_entry(settings, {"id": "r1", "flow": "numbers"})

    rejected("too_large", read_request, found, 10)


def test_read_request_rejects_a_symlink(settings: HiveSettings) -> None:
    real = settings.resolved_inbox_dir / "real.json"
    real.parent.mkdir(parents=True)
    real.write_text('{"id": "r1", "flow": "numbers"}')
    (settings.resolved_inbox_dir / "requests").mkdir()
    (settings.resolved_inbox_dir / "requests" / "link.json").symlink_to(real)
    [found] = backlog(settings.resolved_inbox_dir, "requests", None, 10).entries

    rejected("symlink", read_request, found, settings.max_request_bytes)


# Data files ------------------------------------------------------------------------------


def test_file_event_is_keyed_by_flow_name_and_content_hash(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    found = entry(settings, "drops", "day.jsonl", GOOD)
    digest = hashlib.sha256(GOOD).hexdigest()

    event = file_event(found, drops, settings, registry)

    assert event.key == f"file:drops/day.jsonl@{digest[:24]}"
    assert event.event_id == f"day.jsonl@{digest[:12]}"
    assert (event.source, event.flow, event.path) == ("file", "drops", found.path)
    assert event.run_config == {
        "ops": {"raw": {"config": {"params": {"path": "drops/day.jsonl", "root": "inbox"}}}}
    }


def test_file_delivered_again_with_the_same_content_has_the_same_key(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    first = file_event(entry(settings, "drops", "day.jsonl", GOOD), drops, settings, registry)

    again = file_event(entry(settings, "drops", "day.jsonl", GOOD), drops, settings, registry)

    assert again.key == first.key


def test_file_rewritten_with_new_content_has_a_new_key(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    first = file_event(entry(settings, "drops", "day.jsonl", GOOD), drops, settings, registry)

    new = file_event(entry(settings, "drops", "day.jsonl", GOOD * 2), drops, settings, registry)

    assert new.key != first.key


def test_file_event_without_a_flow_is_rejected(
    settings: HiveSettings, registry: TransformRegistry
) -> None:
    found = entry(settings, "nosuch", "day.jsonl", GOOD)

    rejected("unknown_flow", file_event, found, None, settings, registry)


def test_file_event_for_a_flow_without_input_node_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, numbers: FlowPlan
) -> None:
    found = entry(settings, "numbers", "day.jsonl", GOOD)

    rejected("no_input", file_event, found, numbers, settings, registry)


def test_file_event_over_max_event_file_bytes_is_rejected(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch, registry: TransformRegistry
) -> None:
    small = use_settings(monkeypatch, max_event_file_bytes=len(GOOD) - 1)
    plan = load_plan(write_flow(hive_env, DROPS_FLOW), registry, small)
    found = entry(small, "drops", "day.jsonl", GOOD)

    rejected("too_large", file_event, found, plan, small, registry)


def test_file_event_without_a_root_param_sets_only_the_path(
    hive_env: Path, settings: HiveSettings, registry: TransformRegistry
) -> None:
    text = DROPS_FLOW.replace(
        "host: {input_node: raw}", "host: {input_node: raw, input_root_param: null}"
    )
    plan = load_plan(write_flow(hive_env, text), registry, settings)
    found = entry(settings, "drops", "day.jsonl", GOOD)

    event = file_event(found, plan, settings, registry)

    assert event.run_config == {"ops": {"raw": {"config": {"params": {"path": "drops/day.jsonl"}}}}}


# Requests against their flow ---------------------------------------------------------------


def test_request_params_are_checked_merged_over_the_yaml_but_sent_alone(
    settings: HiveSettings, registry: TransformRegistry, numbers: FlowPlan
) -> None:
    request = EventRequest(id="r1", flow="numbers", params={"numbers": {"rows": 5}})
    found = request_entry(settings, request.model_dump())

    event = request_event(request, found, numbers, settings, registry)

    assert (event.key, event.event_id, event.source) == ("request:r1", "r1", "request")
    assert event.run_config == {"ops": {"numbers": {"config": {"params": {"rows": 5}}}}}


def test_request_without_params_or_inputs_has_an_empty_run_config(
    settings: HiveSettings, registry: TransformRegistry, numbers: FlowPlan
) -> None:
    request = EventRequest(id="r1", flow="numbers")

    event = request_event(request, request_entry(settings, {}), numbers, settings, registry)

    assert event.run_config == {}


def test_request_params_that_do_not_fit_are_rejected(
    settings: HiveSettings, registry: TransformRegistry, numbers: FlowPlan
) -> None:
    request = EventRequest(id="r1", flow="numbers", params={"numbers": {"rows": "many"}})

    error = rejected(
        "params", request_event, request, request_entry(settings, {}), numbers, settings, registry
    )

    assert "Params for node 'numbers' do not fit" in error.reason


def test_run_config_for_a_node_the_flow_lacks_is_rejected(
    registry: TransformRegistry, numbers: FlowPlan
) -> None:
    error = rejected("params", run_config, numbers, {"ghost": {}}, registry)

    assert "has no node 'ghost'" in error.reason


def test_request_input_goes_to_the_input_node(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    entry(settings, ".uploads", "day.jsonl", GOOD)
    request = make_request(inputs=[{"path": ".uploads/day.jsonl"}])

    event = request_event(request, request_entry(settings, {}), drops, settings, registry)

    assert event.run_config == {
        "ops": {"raw": {"config": {"params": {"path": ".uploads/day.jsonl", "root": "inbox"}}}}
    }


def test_request_input_from_another_data_root_names_that_root(
    hive_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: TransformRegistry,
    tmp_path: Path,
) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "day.jsonl").write_bytes(GOOD)
    settings = use_settings(
        monkeypatch, data_roots=json.dumps({"landing": str(tmp_path / "landing")})
    )
    plan = load_plan(write_flow(hive_env, DROPS_FLOW), registry, settings)
    request = make_request(inputs=[{"root": "landing", "path": "day.jsonl", "node": "raw"}])

    event = request_event(request, request_entry(settings, {}), plan, settings, registry)

    assert event.run_config == {
        "ops": {"raw": {"config": {"params": {"path": "day.jsonl", "root": "landing"}}}}
    }


def test_request_input_escaping_the_inbox_with_dotdot_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    request = make_request(inputs=[{"path": "../secret.jsonl"}])

    error = rejected(
        "path_escape",
        request_event,
        request,
        request_entry(settings, {}),
        drops,
        settings,
        registry,
    )

    assert "outside root 'inbox'" in error.reason


def test_request_input_with_an_absolute_path_elsewhere_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    request = make_request(inputs=[{"path": "/etc/hostname"}])

    error = rejected(
        "path_escape",
        request_event,
        request,
        request_entry(settings, {}),
        drops,
        settings,
        registry,
    )

    assert "outside root 'inbox'" in error.reason


def test_request_input_that_is_not_a_file_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    request = make_request(inputs=[{"path": "nothing-here.jsonl"}])

    rejected(
        "missing_input",
        request_event,
        request,
        request_entry(settings, {}),
        drops,
        settings,
        registry,
    )


def test_request_input_as_an_absolute_path_inside_the_inbox_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    inside = entry(settings, ".uploads", "day.jsonl", GOOD).path
    request = make_request(inputs=[{"path": str(inside)}])

    error = rejected(
        "path_escape",
        request_event,
        request,
        request_entry(settings, {}),
        drops,
        settings,
        registry,
    )

    assert "must be a path relative to root 'inbox'" in error.reason


def test_request_input_from_an_unknown_root_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    request = make_request(inputs=[{"root": "nowhere", "path": "day.jsonl"}])

    error = rejected(
        "path_escape",
        request_event,
        request,
        request_entry(settings, {}),
        drops,
        settings,
        registry,
    )

    assert "Unknown data root 'nowhere'" in error.reason


def test_request_input_through_a_symlink_inside_the_inbox_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, drops: FlowPlan
) -> None:
    real = entry(settings, ".uploads", "day.jsonl", GOOD).path
    (settings.resolved_inbox_dir / "alias.jsonl").symlink_to(real)
    request = make_request(inputs=[{"path": "alias.jsonl"}])

    rejected(
        "symlink", request_event, request, request_entry(settings, {}), drops, settings, registry
    )


def test_request_input_over_max_event_file_bytes_is_rejected(
    hive_env: Path, monkeypatch: pytest.MonkeyPatch, registry: TransformRegistry
) -> None:
    small = use_settings(monkeypatch, max_event_file_bytes=len(GOOD) - 1)
    plan = load_plan(write_flow(hive_env, DROPS_FLOW), registry, small)
    entry(small, ".uploads", "day.jsonl", GOOD)
    request = make_request(inputs=[{"path": ".uploads/day.jsonl"}])

    rejected("too_large", request_event, request, request_entry(small, {}), plan, small, registry)


def test_request_input_for_a_flow_without_input_node_is_rejected(
    settings: HiveSettings, registry: TransformRegistry, numbers: FlowPlan
) -> None:
    entry(settings, ".uploads", "day.jsonl", GOOD)
    request = EventRequest.model_validate(
        {"id": "r1", "flow": "numbers", "inputs": [{"path": ".uploads/day.jsonl"}]}
    )

    rejected(
        "no_input", request_event, request, request_entry(settings, {}), numbers, settings, registry
    )


def test_request_for_an_unknown_flow_is_rejected(
    settings: HiveSettings, registry: TransformRegistry
) -> None:
    request = EventRequest(id="r1", flow="nosuch")

    error = rejected(
        "unknown_flow",
        request_event,
        request,
        request_entry(settings, {}),
        None,
        settings,
        registry,
    )

    assert "'nosuch'" in error.reason
