"""Known vulnerabilities in the locks: pip-audit on each, judged against a reviewed ignore file.

``python -m scripts.audit [--ignore-file FILE] LOCK...`` (``make audit``: requirements/service.txt, what
the image installs, and requirements/dev.txt, the development environment). Each lock is audited as
pinned (``--no-deps --disable-pip``: nothing is resolved or installed) against PyPI's vulnerability
data. A finding fails the audit unless an entry of the ignore file (requirements/audit-ignore.toml)
names its id or one of its aliases, with a reason and a review date, and has not expired.

Exit status: 0 audited, nothing unaccepted; 1 a known vulnerability that is not accepted; 2 the ignore
file or pip-audit failed; 3 the audit could not run here, because the vulnerability service did not
answer (no network, or an index that serves no vulnerability data). Exit 3 is never a pass: it says
so in one sentence, and .ci/run goes on without claiming the audit passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IGNORE_FILE = ROOT / "requirements" / "audit-ignore.toml"
PASSED, VULNERABLE, FAILED, UNAVAILABLE = 0, 1, 2, 3
_ENTRY_KEYS = {"id", "package", "reason", "reviewed", "expires"}
# pip-audit's own words when its service cannot be reached (pip_audit/_cli.py, _service/*.py), and
# the requests exceptions it lets through (a refused connection to OSV is not caught there)
_UNREACHABLE_SIGNS = (
    "Could not connect", "your network may be blocking", "not redirecting properly",
    "requests.exceptions.ConnectionError", "requests.exceptions.ConnectTimeout", "NameResolutionError",
)  # fmt: skip


class IgnoreFileError(Exception):
    """The ignore file cannot be used; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Accepted:
    """One reviewed entry of the ignore file."""

    id: str
    package: str
    reason: str
    reviewed: dt.date
    expires: dt.date | None = None

    def matches(self, finding: Finding) -> bool:
        return self.package == finding.package and self.id.upper() in {i.upper() for i in finding.ids}

    def in_force(self, today: dt.date) -> bool:
        return self.expires is None or today <= self.expires


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def describe(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = f"; fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "; no fixed version yet"
        return f"{self.package} {self.version}: {self.id}{aliases}{fixed}"


@dataclass
class Report:
    """What pip-audit said about one lock."""

    findings: list[Finding] = field(default_factory=list)
    audited: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # package -> pip-audit's reason


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _date(value: Any, where: str, key: str) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise IgnoreFileError(f"{where}: {key} must be a date (YYYY-MM-DD), not {value!r}")


def parse_ignore_file(text: str, source: str = "the ignore file") -> list[Accepted]:
    """The entries of an ignore file (TOML: ``[[ignore]]`` tables). Every entry needs an id, the
    package, a reason and the date it was reviewed; ``expires`` (a date) is optional."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise IgnoreFileError(f"{source} is not valid TOML: {error}") from None
    unknown = set(data) - {"ignore"}
    if unknown:
        raise IgnoreFileError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; entries are [[ignore]] tables")
    entries = data.get("ignore", [])
    if not isinstance(entries, list):
        raise IgnoreFileError(f"{source}: 'ignore' must be a list of [[ignore]] tables")
    accepted: list[Accepted] = []
    seen: set[tuple[str, str]] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{source}, entry {number}"
        if not isinstance(entry, dict):
            raise IgnoreFileError(f"{where}: must be a table")
        extra = set(entry) - _ENTRY_KEYS
        if extra:
            raise IgnoreFileError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        for key in ("id", "package", "reason"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise IgnoreFileError(f"{where}: '{key}' is missing or empty (every accepted vulnerability needs it)")
        if "reviewed" not in entry:
            raise IgnoreFileError(f"{where}: 'reviewed' (the date of the review) is missing")
        where = f"{source}, entry {number} ({entry['id']})"
        if len(entry["reason"].split()) < 3:
            raise IgnoreFileError(f"{where}: the reason must say why, in words, not {entry['reason']!r}")
        item = Accepted(
            id=entry["id"].strip(),
            package=_normalise(entry["package"].strip()),
            reason=" ".join(entry["reason"].split()),
            reviewed=_date(entry["reviewed"], where, "reviewed"),
            expires=_date(entry["expires"], where, "expires") if "expires" in entry else None,
        )
        if (item.id.upper(), item.package) in seen:
            raise IgnoreFileError(f"{where}: listed twice")
        seen.add((item.id.upper(), item.package))
        accepted.append(item)
    return accepted


def parse_report(document: dict[str, Any]) -> Report:
    """pip-audit's JSON report (``--format json --aliases on``)."""
    report = Report()
    for dependency in document.get("dependencies", []):
        name = _normalise(dependency["name"])
        if "skip_reason" in dependency:
            report.skipped[name] = dependency["skip_reason"]
            continue
        report.audited += 1
        for vuln in dependency.get("vulns", []):
            report.findings.append(
                Finding(
                    package=name,
                    version=dependency["version"],
                    id=vuln["id"],
                    aliases=tuple(vuln.get("aliases", ())),
                    fix_versions=tuple(vuln.get("fix_versions", ())),
                )
            )
    return report


@dataclass(frozen=True)
class Verdict:
    status: int
    lines: tuple[str, ...]


def judge(reports: dict[str, Report], accepted: Sequence[Accepted], today: dt.date) -> Verdict:
    """The policy: every finding is accepted by an entry in force, or the audit fails; a lock whose
    packages were all skipped was not audited (UNAVAILABLE, never a pass); some skipped is a failure."""
    lines: list[str] = []
    if all(report.audited == 0 and report.skipped for report in reports.values()):
        count = sum(len(report.skipped) for report in reports.values())
        reason = next(iter(next(iter(reports.values())).skipped.values()))
        why = f"PyPI's vulnerability data answered for none of the {count} pinned versions (pip-audit: {reason!r})"
        return Verdict(UNAVAILABLE, (unavailable_sentence(why),))
    status = PASSED
    used: set[Accepted] = set()
    for lock, report in reports.items():
        if report.skipped:
            status = max(status, FAILED)
            names = ", ".join(sorted(report.skipped))
            lines.append(f"{lock}: not audited, so the audit did not pass: {names} ({len(report.skipped)} skipped)")
        refused, allowed = [], []
        for finding in report.findings:
            entry = next((a for a in accepted if a.matches(finding)), None)
            if entry is not None and entry.in_force(today):
                used.add(entry)
                allowed.append(f"  accepted {finding.describe()}: {entry.reason} (reviewed {entry.reviewed})")
            elif entry is not None:
                refused.append(f"  {finding.describe()}: its ignore entry expired on {entry.expires}")
            else:
                refused.append(f"  {finding.describe()}")
        if refused:
            status = max(status, VULNERABLE)
            lines.append(
                f"{lock}: {len(refused)} known vulnerabilit{'y' if len(refused) == 1 else 'ies'} not accepted:"
            )
            lines += refused
        else:
            lines.append(f"{lock}: {report.audited} packages audited, no known vulnerability that is not accepted")
        lines += allowed
    for entry in accepted:
        if entry not in used:
            lines.append(
                f"note: ignore entry {entry.id} ({entry.package}) matches nothing now: remove it if it is stale"
            )
    return Verdict(status, tuple(lines))


def unavailable_sentence(why: str) -> str:
    return f"The dependency audit could not run here: {why}; nothing was audited, so it did not pass."


def audit_lock(lock: Path, timeout: int, service: Sequence[str] = ()) -> Report | str:
    """pip-audit on one lock as pinned; a ``str`` is why the service could not be used. ``service``:
    pip-audit's own options choosing it (default: PyPI's JSON API)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "audit.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps", "--disable-pip",
            "--format", "json", "--aliases", "on", "--desc", "off", "--output", str(output),
            "--progress-spinner", "off", "--timeout", str(timeout), *service,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if output.is_file() and output.read_text().strip():
            return parse_report(json.loads(output.read_text()))
    if any(sign in done.stderr for sign in _UNREACHABLE_SIGNS):
        return "pip-audit could not connect to its vulnerability service"
    raise RuntimeError(f"pip-audit failed on {lock} (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.audit", description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path, help="pinned requirements files (requirements/*.txt)")
    parser.add_argument("--ignore-file", type=Path, default=DEFAULT_IGNORE_FILE)
    parser.add_argument("--timeout", type=int, default=15, help="seconds per request to the service")
    parser.add_argument("--osv-url", help="ask an OSV API at this URL instead of PyPI (e.g. a mirror)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    service = ("--vulnerability-service", "osv", "--osv-url", args.osv_url) if args.osv_url else ()
    try:
        accepted = parse_ignore_file(args.ignore_file.read_text(), str(args.ignore_file))
    except (OSError, IgnoreFileError) as error:
        print(f"audit: {error}", file=sys.stderr)
        return FAILED
    reports: dict[str, Report] = {}
    for lock in args.locks:
        try:
            outcome = audit_lock(lock, args.timeout, service)
        except RuntimeError as error:
            print(f"audit: {error}", file=sys.stderr)
            return FAILED
        if isinstance(outcome, str):
            print(unavailable_sentence(outcome))
            return UNAVAILABLE
        reports[str(lock)] = outcome
    verdict = judge(reports, accepted, dt.date.today())
    print("\n".join(verdict.lines))
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
