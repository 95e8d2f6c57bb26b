"""The inbox: where events wait, in the order they arrived, and where decided ones go.

```
inbox/
  <flow>/<file>                a data file for the flow's input node
  <flow>/<id>.request.json     a validated request, routed here from requests/
  requests/<name>.json         a JSON request: id, flow, params, optional inputs
  .quarantine/<stream>/        rejected events, each with <name>.reason.json beside it
  .processed/<stream>/         events whose run succeeded, and duplicates
  .failed/<stream>/<name>.json the failure and run id of an event whose run failed
```

Arrival order is the inode change time (ctime): the kernel sets it when a file is created,
written or renamed into the folder, so a file moved in with an old modification time still
queues behind the files already waiting. Names starting with "." or ending in .tmp, .part
or .partial are files still being written and are never events.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

REQUESTS = "requests"
QUARANTINE = ".quarantine"
PROCESSED = ".processed"
FAILED = ".failed"
ROUTED_SUFFIX = ".request.json"
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial")
HASH_CHUNK = 1 << 20


class Position(BaseModel):
    """An event's place in its stream: arrival time, then name. The cursor stores these."""

    ctime_ns: int
    name: str

    def key(self) -> tuple[int, str]:
        return (self.ctime_ns, self.name)


@dataclass(frozen=True)
class Entry:
    """A file waiting in one stream of the inbox."""

    stream: str
    path: Path
    position: Position
    size: int
    is_symlink: bool

    @property
    def is_routed_request(self) -> bool:
        return self.path.name.endswith(ROUTED_SUFFIX)

    def settled(self, now_ns: int, settle_ns: int) -> bool:
        """A file is complete once it has not changed for the settle time; routed requests
        were written by the host itself and are complete at once."""
        return self.is_routed_request or now_ns - self.position.ctime_ns >= settle_ns


@dataclass(frozen=True)
class Backlog:
    """What one look at a stream found: the oldest entries after the cursor, and the count."""

    entries: list[Entry]
    waiting: int
    oldest_ctime_ns: int | None


def streams(inbox: Path) -> list[str]:
    """The stream folders of the inbox: `requests` and one per flow that has a folder."""
    if not inbox.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(inbox)
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")
    )


def backlog(inbox: Path, stream: str, after: Position | None, limit: int) -> Backlog:
    """The `limit` oldest entries of a stream after `after`; stats each file once."""
    folder = inbox / stream
    if not folder.is_dir():
        return Backlog([], 0, None)
    candidates = [
        e for e in _entries(folder, stream) if after is None or e.position.key() > after.key()
    ]
    oldest = min((e.position.ctime_ns for e in candidates), default=None)
    chosen = heapq.nsmallest(limit, candidates, key=lambda e: e.position.key())
    return Backlog(chosen, len(candidates), oldest)


def _entries(folder: Path, stream: str) -> Iterator[Entry]:
    with os.scandir(folder) as found:
        for item in found:
            name = item.name
            if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES):
                continue
            try:
                info = item.stat(follow_symlinks=False)
                if item.is_dir(follow_symlinks=False):
                    continue
            except FileNotFoundError:
                continue  # moved away while we looked
            yield Entry(
                stream=stream,
                path=Path(item.path),
                position=Position(ctime_ns=info.st_ctime_ns, name=name),
                size=info.st_size,
                is_symlink=item.is_symlink(),
            )


def content_hash(path: Path, limit_bytes: int) -> str:
    """SHA-256 of a file, read in chunks, refusing to read past `limit_bytes`."""
    digest = hashlib.sha256()
    read = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            read += len(chunk)
            if read > limit_bytes:
                raise ValueError(f"{path.name} grew past {limit_bytes:,} bytes while hashed.")
            digest.update(chunk)
    return digest.hexdigest()


def quarantine(inbox: Path, entry: Entry, kind: str, reason: str) -> Path:
    """Move a rejected event aside with a reason file; the reason is written first so a
    crash never leaves a quarantined file without one."""
    folder = inbox / QUARANTINE / entry.stream
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = _free_name(folder / f"{stamp}-{entry.path.name}")
    record = {
        "kind": kind,
        "reason": reason,
        "event": str(entry.path),
        "stream": entry.stream,
        "quarantined_at": time.time(),
    }
    write_json(target.with_name(target.name + ".reason.json"), record)
    os.replace(entry.path, target)
    return target


def move_to_processed(inbox: Path, stream: str, path: Path, note: str | None = None) -> Path | None:
    """Move a decided event to the processed folder; None if it is already gone."""
    folder = inbox / PROCESSED / stream
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder / path.name)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    if note:
        write_json(target.with_name(target.name + ".note.json"), {"note": note})
    return target


def record_failure(inbox: Path, stream: str, name: str, record: dict[str, Any]) -> Path:
    """Write why an event's run failed; the event itself stays where it is."""
    folder = inbox / FAILED / stream
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.json"
    write_json(target, record)
    return target


def write_json(path: Path, record: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(partial, path)


def _free_name(path: Path) -> Path:
    candidate, count = path, 1
    while candidate.exists() or candidate.is_symlink():
        count += 1
        candidate = path.with_name(f"{path.stem}.{count}{path.suffix}")
    return candidate
