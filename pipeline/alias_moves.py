"""Moving an alias and keeping the gate's verdicts: the write side of the alias record (core/aliases.py).

Written under an exclusive lock (two pipelines or commands at once: both changes kept) and atomically.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.aliases import CHALLENGER, CHAMPION, read, record_path
from core.artefact import PROMOTION_FILE


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def actor() -> str:
    """Who moved an alias: the user and machine (the record is local; the reason says why)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid without a passwd entry
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@contextmanager
def _locked(model_name: str, home: Path | None) -> Iterator[dict[str, Any]]:
    """The record under an exclusive lock (two pipelines or commands at once: both changes kept), written
    back atomically when the block ends without an error."""
    path = record_path(model_name, home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = read(model_name, home)
        yield record
        _write_atomically(path, record)


def move(
    tag: str,
    alias: str,
    *,
    kind: str,
    reason: str,
    by: str,
    checks: list[str] | None = None,
    model_folder: Path | None = None,
    home: Path | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at ``tag`` and record the move; returns it. ``kind``: gate, forced, promote, rollback."""
    name = tag.split(":", maxsplit=1)[0]
    with _locked(name, home) as record:
        entry = {
            "alias": alias,
            "tag": tag,
            "previous": record["aliases"].get(alias),
            "at": now(),
            "by": by,
            "kind": kind,
            "reason": reason,
            "checks": checks or [],
        }
        record["aliases"][alias] = tag
        if alias == CHAMPION and record["aliases"].get(CHALLENGER) == tag:
            del record["aliases"][CHALLENGER]  # a model is not its own challenger
        record["moves"].append(entry)
    if alias == CHAMPION and model_folder is not None:
        _write_atomically(model_folder / PROMOTION_FILE, {"promoted_at": entry["at"], **entry})
    return entry


def record_decision(tag: str, decision: dict[str, Any], home: Path | None = None) -> None:
    """Keep the gate's verdict on ``tag`` (decision.json's content: every check with its numbers)."""
    name = tag.split(":", maxsplit=1)[0]
    with _locked(name, home) as record:
        record.setdefault("decisions", {})[tag] = decision


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
