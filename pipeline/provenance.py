"""What made an artefact: content hashes, code version, library versions and manifests."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The code whose change must change results: the pipeline's stage modules (not its command-line tools in
# pipeline/cli/, which only read and present) and the kernel both sides stand on. The service is not in it.
CODE_FILES = ("pipeline/*.py", "core/*.py")
_LIBRARIES = ("luigi", "bentoml", "scikit-learn", "numpy", "pandas", "pydantic", "joblib", "matplotlib", "mapie")
MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: Path) -> str:
    """Hash of a file, or of a folder's files (names and contents, in sorted order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(sha256_file(item).encode())
    return digest.hexdigest()


@functools.cache
def code_version() -> str:
    """A short hash of the code that shapes results (:data:`CODE_FILES`); it goes into every task id.

    Hashing the files (not asking git) means an uncommitted edit changes task ids too, and a
    tarball without .git still gets a version.
    """
    return code_version_of(PROJECT_ROOT)


def code_version_of(root: Path) -> str:
    digest = hashlib.sha256()
    for pattern in CODE_FILES:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def git_state() -> dict[str, Any]:
    """The git commit and whether the tree had uncommitted changes (None outside a checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


@functools.cache
def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_manifest(output_dir: Path) -> dict[str, Any]:
    return json.loads((output_dir / MANIFEST_NAME).read_text())
