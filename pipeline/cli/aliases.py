"""The alias commands: list the aliases and their moves, promote a tag by hand, roll back; each with a reason.

``python -m pipeline aliases | promote TAG --reason R | rollback [--to TAG] --reason R`` (and
``make aliases``, ``make promote``, ``make rollback``). A person moving the champion bypasses the gate,
so the reason is required and recorded with who did it; the tag's own gate verdict, if it has one, is
printed and recorded beside it. The record itself: service/aliases.py.
"""

from __future__ import annotations

from pathlib import Path

from bentoml.exceptions import BentoMLException

from core import aliases
from core.artefact import MODEL_NAME
from pipeline import alias_moves
from pipeline.errors import LineageError
from pipeline.package import full_tag, registered_model

_SHOWN = 20  # moves listed by `aliases`


def _reason(reason: str) -> str:
    if not reason.strip():
        raise LineageError("a reason is required (--reason 'why'); it is recorded with the move")
    return reason.strip()


def _verdict(tag: str) -> str:
    decision = aliases.decision(tag)
    if decision is None:
        return "never judged by the gate"
    failed = decision.get("failed") or []
    return f"gate: {decision['outcome']}" + (f" ({'; '.join(failed)})" if failed else "")


def make_champion(tag: str, reason: str, kind: str) -> str:
    """Move ``champion`` to ``tag`` (which must be in the store); returns what to print."""
    reason = _reason(reason)
    try:
        model = registered_model(full_tag(MODEL_NAME, tag))  # one sentence naming the registered ones if not there
    except (BentoMLException, ValueError) as exc:  # not a tag at all, e.g. "a:b:c"
        raise LineageError(f"{tag!r} is not a valid model tag: {exc}") from None
    tag = str(model.tag)
    current = aliases.promoted_tag(MODEL_NAME)
    if current == tag:
        return f"{tag} is already champion; nothing moved"
    verdict = _verdict(tag)
    alias_moves.move(
        tag,
        aliases.CHAMPION,
        kind=kind,
        reason=reason,
        by=f"python -m pipeline {kind} ({alias_moves.actor()})",
        checks=[verdict],
        model_folder=Path(model.path),
    )
    return (
        f"champion: {tag} (was {current or 'none'}); {verdict}. A running service keeps its model until "
        "restarted; docs/model-card.md says how to roll it out"
    )


def rollback(reason: str, to: str | None = None) -> str:
    """Champion back to the one before it (or to ``to``)."""
    _reason(reason)
    if to is None:
        to = aliases.previous_champion(aliases.read(MODEL_NAME))
        if to is None:
            raise LineageError("there is no earlier champion to roll back to; name one with --to TAG")
    return make_champion(to, reason, "rollback")


def table() -> str:
    """The aliases now, then the moves, newest first."""
    record = aliases.read(MODEL_NAME)
    if not record.get("moves"):
        return f"no aliases yet for {MODEL_NAME} in this store (the first model that passes the gate becomes champion)"
    lines = [f"{alias:<11} {record['aliases'].get(alias) or '-'}" for alias in aliases.ALIASES]
    lines += ["", f"moves, newest first ({min(len(record['moves']), _SHOWN)} of {len(record['moves'])}):"]
    for move in reversed(record["moves"][-_SHOWN:]):
        lines.append(
            f"  {move['at']}  {move['alias']:<10} {move['tag']}  (was {move.get('previous') or '-'})  "
            f"{move['kind']} by {move['by']}: {move['reason']}"
        )
    return "\n".join(lines)
