"""A newcomer's first commands: the environment, `make pipeline` with any path, the documents cited."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.support.paths import RAW_DATA, ROOT

# Never (re)create the real environment from a test: the tests already run in it.
KEEP_ENV = ("-o", ".tox/dev/.locked-from-requirements")


def make(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env}
    return subprocess.run(
        ["make", "-s", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=300, check=False
    )


def test_make_pipeline_keeps_a_raw_data_path_with_spaces_whole(tmp_path: Path) -> None:
    raw = tmp_path / "my data" / "raw file.csv"
    raw.parent.mkdir()
    raw.write_bytes(RAW_DATA.read_bytes().splitlines(keepends=True)[0])  # header only: fails fast, naming the file
    result = make(*KEEP_ENV, "pipeline", f"RAW_DATA={raw}", f"ARTEFACTS={tmp_path / 'my artefacts'}")
    assert result.returncode != 0
    assert f"raw data file {raw} has a header but no rows" in result.stderr
    assert (tmp_path / "my artefacts").is_dir()  # and the output folder's path stayed whole too


def test_creating_the_environment_shows_progress(tmp_path: Path) -> None:
    env = tmp_path / "env"
    fake_tox = tmp_path / "tox"  # installs where the real one would, without pip: two locked packages, and
    # the venv's own pip and setuptools, which are not in the lock and must not count ("137 of 135")
    site = '"$ENV/lib/python3.11/site-packages"'
    installed = ("six-1.17.0", "MarkupSafe-3.0.4", "pip-25.0", "setuptools-80.0.0")
    fake_tox.write_text("#!/bin/sh\n" + "".join(f"mkdir -p {site}/{name}.dist-info\n" for name in installed))
    fake_tox.chmod(0o755)
    result = make("env-create", f"TOX={fake_tox}", f"ENV={env}", "PROGRESS_EVERY=1")
    assert result.returncode == 0, result.stderr
    total = sum("==" in line for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines())
    assert f"Creating {env}/ from requirements/dev.txt with tox: {total} packages" in result.stdout
    assert f"{env}/: 2 of {total} packages installed (tox exit 0)" in result.stdout
    assert (env / ".locked-from-requirements").is_file()


def test_no_committed_file_is_in_the_way_of_python_m_venv_venv() -> None:
    assert not (ROOT / ".venv").is_file()  # `python -m venv .venv` failed on a committed file of that name
    tracked = subprocess.run(["git", "ls-files", ".venv"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""


def test_every_document_the_project_cites_exists() -> None:
    cited: set[tuple[str, str]] = set()
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "requirements").glob("*.in"))]
    for source in sources:
        # Project documents: docs/... or upper-case names (README.md); not generated files like report.md.
        for name in re.findall(r"(?<![\w/])(?:docs/[\w./-]+|[A-Z][A-Z0-9_-]+)\.md\b", source.read_text()):
            if not (ROOT / name).is_file() and not (source.parent / name).is_file():
                cited.add((source.relative_to(ROOT).as_posix(), name))
    assert cited == set()  # e.g. ENGINEERING.md was cited for the version choices but never committed


def test_every_readme_section_the_project_cites_exists() -> None:
    """``README "Section"`` or ``README.md#anchor`` in a project file names a heading the README has."""
    headings = re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.MULTILINE)
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    sources = [ROOT / name for name in ("pyproject.toml", "Makefile", "tox.ini", "bentofile.yaml")]
    sources += [*(ROOT / "docs").glob("*.md"), *(ROOT / "requirements").glob("*.in"), ROOT / "README.md"]
    sources += [*(ROOT / "pipeline").glob("*.py"), *(ROOT / "service").glob("*.py")]
    missing = []
    for source in sources:
        text = source.read_text()
        for section in re.findall(r'README(?:\.md)?(?: section)? "([^"]+)"', text):
            if section not in headings:
                missing.append((source.name, section))
        for anchor in re.findall(r"README\.md#([\w-]+)", text):
            if anchor not in anchors:
                missing.append((source.name, anchor))
    assert missing == []  # pyproject.toml pointed to a README "Dependencies" section that had gone


def test_the_luigi_command_the_docs_show_runs_from_the_checkout() -> None:
    """Luigi's script does not put the checkout on Python's path: the docs show it with ``PYTHONPATH=.``."""
    shown = [
        command
        for document in (ROOT / "README.md", *(ROOT / "docs").glob("*.md"))
        for command in re.findall(r"`([^`]*\bluigi --module[^`]*)`", document.read_text().replace("\n", " "))
    ]
    assert shown, "docs/pipeline.md shows Luigi's own command line"
    for command in shown:
        assert command.startswith("PYTHONPATH=. "), command
        words = command.split()[1:]  # without the variable, which goes to env below
        words = [w.replace("TASK", "PrepareData") for w in words] + ["--help"]
        env = {**os.environ, "PYTHONPATH": "."}
        result = subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0 and "--PrepareData-raw-data" in result.stdout, result.stderr[-2000:]
