"""Set-up done once for a whole test run, however many pytest-xdist workers share it.

Each xdist worker is a pytest session of its own, with its own session fixtures. What is expensive and
can be shared (the pipeline run every suite starts from) is made once, by whichever worker asks first,
under a file lock in the folder all the run's workers share; the others wait for it and reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every xdist worker sees (the parent of their base temps)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (an flock: released if the holder dies)."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name`` of this run, filled by ``make(folder)`` the first time any worker asks.

    If ``make`` fails, the folder is removed and the failure is recorded: the workers that ask later
    fail at once with the same message instead of doing the work again.
    """
    root = run_folder(tmp_path_factory)
    folder, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with exclusive(root / f"{name}.lock"):
        if failed.exists():
            raise AssertionError(f"{name} failed in another worker of this run:\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                make(folder)
            except BaseException as error:
                failed.write_text(str(error)[-4000:])
                shutil.rmtree(folder, ignore_errors=True)
                raise
            done.touch()
    return folder
