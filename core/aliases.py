"""Named aliases of registered models, with every move and every gate decision: a record beside the store.

``$BENTOML_HOME/aliases/<model name>.json`` holds
- ``aliases``: ``champion`` (what serving uses by default) and ``challenger`` (the newest model that
  passed the gate's own checks but did not beat the champion);
- ``moves``: every change of an alias, oldest first: which tag, which it replaced, when, by which run or
  command and person, why, and the gate's numbers;
- ``decisions``: the gate's verdict on each tag it judged, so a re-run neither judges a model twice nor
  changes the champion behind anyone's back.

BentoML's store has no mutable labels or aliases (MLflow's registry has; this record follows its
``champion``/``challenger`` naming and adds the history), hence a file of our own, written under a lock
and atomically. A store written before aliases (``promotions/<name>.json``) is read as one. A model made
champion also gets ``promotion.json`` in its own folder, so a Bento (which copies the folder) still
knows when its model was promoted. This module reads the record; only the pipeline writes it
(pipeline/alias_moves.py), so the served image carries no code that moves an alias.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.artefact import PROMOTION_FILE

CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)
_SHOWN_MOVES = 5  # moves GET /model shows


def bentoml_home() -> Path:
    """The store's folder as BentoML resolves it (``$BENTOML_HOME``, else ``~/bentoml``), without BentoML."""
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("BENTOML_HOME", "~/bentoml"))))


def record_path(model_name: str, home: Path | None = None) -> Path:
    return (home or bentoml_home()) / "aliases" / f"{model_name}.json"


def read(model_name: str, home: Path | None = None) -> dict[str, Any]:
    """The alias record; empty (no aliases, no moves, no decisions) when nothing was ever promoted."""
    path = record_path(model_name, home)
    try:
        record: dict[str, Any] = json.loads(path.read_text())
        return record
    except FileNotFoundError:
        return _from_promotions(model_name, home)


def _from_promotions(model_name: str, home: Path | None) -> dict[str, Any]:
    """A store written before aliases: its promotion history read as champion moves."""
    record: dict[str, Any] = {"model": model_name, "aliases": {}, "moves": [], "decisions": {}}
    legacy = (home or bentoml_home()) / "promotions" / f"{model_name}.json"
    try:
        old = json.loads(legacy.read_text())
    except FileNotFoundError:
        return record
    for entry in old.get("history", []):
        move = {
            "alias": CHAMPION,
            "tag": entry["tag"],
            "previous": entry.get("previously_promoted"),
            "at": entry.get("promoted_at"),
            "by": "pipeline (recorded before aliases)",
            "kind": "forced" if entry.get("forced") else "gate",
            "reason": entry.get("reason") or "passed the promotion gate",
            "checks": [check.get("says", "") for check in entry.get("checks", [])],
        }
        record["moves"].append(move)
        checks = [{"name": "gate", "passed": True, "says": says, "numbers": {}} for says in move["checks"]]
        record["decisions"][entry["tag"]] = {
            "model_tag": entry["tag"],
            "verdict": "forced" if entry.get("forced") else "promoted",
            "outcome": "champion (recorded before aliases)",
            "at": move["at"],
            "by": move["by"],
            "champion_before": move["previous"],
            "reason": entry.get("reason"),
            "failed": [],
            "checks": checks,
        }
    if old.get("promoted"):
        record["aliases"][CHAMPION] = old["promoted"]
    return record


def alias_tag(model_name: str, alias: str = CHAMPION, home: Path | None = None) -> str | None:
    tag = read(model_name, home).get("aliases", {}).get(alias)
    return str(tag) if tag else None


def promoted_tag(model_name: str, home: Path | None = None) -> str | None:
    """The champion's tag (the model served by default), or None."""
    return alias_tag(model_name, CHAMPION, home)


def decision(tag: str, home: Path | None = None) -> dict[str, Any] | None:
    found = read(tag.split(":", maxsplit=1)[0], home).get("decisions", {}).get(tag)
    return dict(found) if found else None


def previous_champion(record: dict[str, Any]) -> str | None:
    """The champion a rollback returns to: the one the current champion replaced, where rollbacks undo
    promotions like a stack (promote B over A, roll back: A; roll back again: what A replaced, not B)."""
    stack: list[str] = []
    for entry in record.get("moves", []):
        if entry["alias"] != CHAMPION:
            continue
        if entry["kind"] == "rollback" and entry["tag"] in stack:  # back to its last tenure
            stack = stack[: len(stack) - stack[::-1].index(entry["tag"])]
        else:
            stack.append(entry["tag"])
    return stack[-2] if len(stack) >= 2 else None


def status(tag: str, model_folder: Path | None, home: Path | None = None) -> dict[str, Any]:
    """What ``GET /model`` says: the aliases of the served model, the current champion, the last moves."""
    name = tag.split(":", maxsplit=1)[0]
    try:
        record: dict[str, Any] | None = read(name, home)
    except (OSError, ValueError):
        record = None
    own: dict[str, Any] = {}
    if model_folder is not None:
        try:
            own = json.loads((model_folder / PROMOTION_FILE).read_text())
        except (OSError, ValueError):
            own = {}
    if not record or not record.get("moves"):  # e.g. inside a Bento: no store record, only the model's own
        return {
            "aliases": [],
            "promoted": None,
            "promoted_at": own.get("promoted_at"),
            "currently_promoted": None,
            "note": "no alias record in this model store; promoted_at is when this model was made champion, if ever",
        }
    aliases = record.get("aliases", {})
    champion = aliases.get(CHAMPION)
    own_moves = [entry for entry in record["moves"] if entry["tag"] == tag and entry["alias"] == CHAMPION]
    result: dict[str, Any] = {
        "aliases": sorted(alias for alias, aliased in aliases.items() if aliased == tag),
        "promoted": champion == tag,
        "promoted_at": own_moves[-1]["at"] if own_moves else None,
        "currently_promoted": champion,
        "forced": own_moves[-1]["kind"] == "forced" if own_moves else None,
        "last_moves": [_short(entry) for entry in record["moves"][-_SHOWN_MOVES:]][::-1],
    }
    if champion and champion != tag:
        result["note"] = (
            f"this service keeps the model it started with; the champion is now {champion}: restart the "
            "service (or roll out a new image) to serve it (docs/model-card.md, 'Aliases and a way back')"
        )
    return result


def card_section(state: dict[str, Any]) -> str:
    """The model card's last section, written when it is served: the served model's aliases and the
    last moves (the stored card cannot know them: aliases move after it was written)."""
    if not state.get("last_moves"):
        return f"\n## Aliases\n\n{state.get('note', 'No alias record in this model store.')}\n"
    own = ", ".join(state["aliases"]) or "none"
    rows = "\n".join(
        f"| {m['at']} | {m['alias']} | {m['tag']} | {m['previous'] or '-'} | {m['kind']} | {m['by']} | {m['reason']} |"
        for m in state["last_moves"]
    )
    note = f"\n{state['note']}\n" if state.get("note") else ""
    return f"""
## Aliases

This model's aliases now: **{own}**; the champion: {state["currently_promoted"] or "none"}.
{note}
| when | alias | model | replaced | kind | by | reason |
|---|---|---|---|---|---|---|
{rows}
"""


def _short(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry.get(key) for key in ("alias", "tag", "previous", "at", "by", "kind", "reason")}
