"""The dependency audit's policy (scripts/audit.py): the reviewed ignore file, pip-audit's report, the
verdict; and the real pip-audit of the lock against a local OSV-style service, since the machine that
runs this suite may reach no vulnerability service at all."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from scripts import audit
from scripts.audit import FAILED, PASSED, UNAVAILABLE, VULNERABLE, Finding, IgnoreFileError, Report
from tests.support.paths import ROOT
from tests.support.ports import free_port

TODAY = dt.date(2026, 12, 6)
ENTRY = """
[[ignore]]
id = "GHSA-aaaa-bbbb-cccc"
package = "Some_Package"
reason = "only reachable through a feature we never enable"
reviewed = 2026-12-01
"""
FINDING = Finding("some-package", "1.0", "PYSEC-2026-1", aliases=("GHSA-aaaa-bbbb-cccc", "CVE-2026-1"))


def test_the_committed_ignore_file_is_valid() -> None:
    audit.parse_ignore_file((ROOT / "requirements" / "audit-ignore.toml").read_text())


def test_an_entry_is_read_with_its_package_normalised() -> None:
    [entry] = audit.parse_ignore_file(ENTRY)
    assert (entry.id, entry.package, entry.reviewed, entry.expires) == (
        "GHSA-aaaa-bbbb-cccc",
        "some-package",
        dt.date(2026, 12, 1),
        None,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('reason = "only reachable through a feature we never enable"', ""), "'reason' is missing"),
        (('reason = "only reachable through a feature we never enable"', 'reason = "  "'), "'reason' is missing"),
        (('reason = "only reachable through a feature we never enable"', 'reason = "ok"'), "must say why"),
        (("reviewed = 2026-12-01", ""), "'reviewed' (the date of the review) is missing"),
        (("reviewed = 2026-12-01", 'reviewed = "last week"'), "reviewed must be a date"),
        (('package = "Some_Package"', ""), "'package' is missing"),
        (('id = "GHSA-aaaa-bbbb-cccc"', 'id = ""'), "'id' is missing"),
        (("reviewed = 2026-12-01", "reviewed = 2026-12-01\nowner = 'x'"), "unknown key(s) owner"),
        (("[[ignore]]", "[ignore]"), "must be a list"),
        (("[[ignore]]", "[[ignored]]"), "unknown key(s) ignored"),
        (("reviewed = 2026-12-01", "reviewed = 2026-12-01\nexpires = 'soon'"), "expires must be a date"),
        (("[[ignore]]", "[[ignore"), "not valid TOML"),
    ],
)
def test_an_entry_without_what_a_review_needs_is_refused(change: tuple[str, str], message: str) -> None:
    with pytest.raises(IgnoreFileError, match=None) as caught:
        audit.parse_ignore_file(ENTRY.replace(*change))
    assert message in str(caught.value)


def test_the_same_vulnerability_twice_is_refused() -> None:
    with pytest.raises(IgnoreFileError, match="listed twice"):
        audit.parse_ignore_file(ENTRY + ENTRY)


def report(*findings: Finding, audited: int = 3, skipped: dict[str, str] | None = None) -> Report:
    return Report(list(findings), audited, skipped or {})


def test_pip_audits_json_is_read_with_aliases_fixes_and_skips() -> None:
    document = {
        "dependencies": [
            {"name": "Some_Package", "version": "1.0", "vulns": [
                {"id": "PYSEC-2026-1", "fix_versions": ["1.1"], "aliases": ["CVE-2026-1"]}]},
            {"name": "clean", "version": "2.0", "vulns": []},
            {"name": "gone", "skip_reason": "Dependency not found on PyPI and could not be audited: gone (0.1)"},
        ],
        "fixes": [],
    }  # fmt: skip
    parsed = audit.parse_report(document)
    assert parsed.findings == [Finding("some-package", "1.0", "PYSEC-2026-1", ("CVE-2026-1",), ("1.1",))]
    assert (parsed.audited, list(parsed.skipped)) == (2, ["gone"])


def test_nothing_found_passes() -> None:
    verdict = audit.judge({"service.txt": report(), "dev.txt": report()}, [], TODAY)
    assert verdict.status == PASSED
    assert "service.txt: 3 packages audited, no known vulnerability that is not accepted" in verdict.lines


def test_a_finding_that_no_entry_accepts_fails_naming_it_and_its_fix() -> None:
    verdict = audit.judge({"dev.txt": report(Finding("x", "1.0", "PYSEC-1", fix_versions=("1.2",)))}, [], TODAY)
    assert verdict.status == VULNERABLE
    assert "  x 1.0: PYSEC-1; fixed in 1.2" in verdict.lines


def test_an_entry_accepts_its_finding_by_any_alias_with_its_reason() -> None:
    accepted = audit.parse_ignore_file(ENTRY)
    verdict = audit.judge({"service.txt": report(FINDING)}, accepted, TODAY)
    assert verdict.status == PASSED
    assert any("accepted some-package 1.0: PYSEC-2026-1" in line and "never enable" in line for line in verdict.lines)


def test_an_entry_accepts_its_package_only() -> None:
    accepted = audit.parse_ignore_file(ENTRY)
    other = Finding("other-package", "1.0", "GHSA-aaaa-bbbb-cccc")
    assert audit.judge({"dev.txt": report(other)}, accepted, TODAY).status == VULNERABLE


def test_an_expired_entry_no_longer_accepts() -> None:
    accepted = audit.parse_ignore_file(ENTRY + "expires = 2026-12-05\n")
    verdict = audit.judge({"dev.txt": report(FINDING)}, accepted, TODAY)
    assert verdict.status == VULNERABLE
    assert any("its ignore entry expired on 2026-12-05" in line for line in verdict.lines)
    still = audit.parse_ignore_file(ENTRY + "expires = 2026-12-06\n")
    assert audit.judge({"dev.txt": report(FINDING)}, still, TODAY).status == PASSED


def test_an_entry_that_matches_nothing_is_pointed_out_without_failing() -> None:
    verdict = audit.judge({"dev.txt": report()}, audit.parse_ignore_file(ENTRY), TODAY)
    assert verdict.status == PASSED
    assert any("GHSA-aaaa-bbbb-cccc (some-package) matches nothing now" in line for line in verdict.lines)


def test_a_service_with_no_data_for_any_package_is_unavailable_never_a_pass() -> None:
    """What this machine's PyPI does: the per-version JSON API answers 404, and pip-audit alone would
    say "No known vulnerabilities found" with every package skipped."""
    none = {"a": "Dependency not found on PyPI and could not be audited: a (1.0)"}
    verdict = audit.judge({"service.txt": report(audited=0, skipped=none), "dev.txt": report(audited=0, skipped=none)},
                          [], TODAY)  # fmt: skip
    assert verdict.status == UNAVAILABLE
    [sentence] = verdict.lines
    assert sentence.startswith("The dependency audit could not run here") and "so it did not pass" in sentence


def test_some_packages_skipped_is_a_failure_not_a_pass() -> None:
    verdict = audit.judge({"dev.txt": report(skipped={"b": "not found"})}, [], TODAY)
    assert verdict.status == FAILED
    assert any(line.startswith("dev.txt: not audited") and ": b (1 skipped)" in line for line in verdict.lines)


# The real pip-audit of the lock, against a local service speaking OSV's query API ---------------------


class FakeOSV(BaseHTTPRequestHandler):
    vulnerable: ClassVar[dict[str, str]] = {}  # package -> vulnerability id

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = query["package"]["name"]
        body: dict = {}
        if name in self.vulnerable:
            body = {"vulns": [{
                "id": self.vulnerable[name], "aliases": ["CVE-2026-99999"], "summary": "test",
                "affected": [{"package": {"name": name, "ecosystem": "PyPI"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}]}],
            }]}  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def osv() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOSV)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def run_audit(lock: Path, ignore: str, tmp_path: Path, osv_url: str, capsys: pytest.CaptureFixture[str]) -> tuple:
    (tmp_path / "ignore.toml").write_text(ignore)
    status = audit.main([str(lock), "--ignore-file", str(tmp_path / "ignore.toml"), "--osv-url", osv_url])
    return status, capsys.readouterr().out


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "lock.txt"
    path.write_text("# a lock\nrequests==2.32.3\nJinja2==3.1.6\n")
    return path


def test_pip_audit_finds_and_the_ignore_file_accepts(
    lock: Path, tmp_path: Path, osv: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(FakeOSV, "vulnerable", {"jinja2": "GHSA-test-test-test"})
    status, out = run_audit(lock, "", tmp_path, osv, capsys)
    assert status == VULNERABLE, out
    [line] = [line for line in out.splitlines() if "jinja2 3.1.6: " in line]  # pip-audit picks which id leads
    assert "GHSA-test-test-test" in line and "CVE-2026-99999" in line and line.endswith("; fixed in 999")
    accept = ENTRY.replace("GHSA-aaaa-bbbb-cccc", "CVE-2026-99999").replace("Some_Package", "Jinja2")
    status, out = run_audit(lock, accept, tmp_path, osv, capsys)
    assert status == PASSED, out
    assert "2 packages audited" in out and "accepted jinja2 3.1.6" in out and "never enable" in out


def test_pip_audit_with_no_service_is_one_sentence_and_not_a_pass(
    lock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_audit(lock, "", tmp_path, f"http://127.0.0.1:{free_port()}/v1/query", capsys)
    assert status == UNAVAILABLE
    assert out.strip().splitlines() == [
        audit.unavailable_sentence("pip-audit could not connect to its vulnerability service")
    ]
