"""A real PostgreSQL server for tests: Debian's ``postgresql`` binaries, a throw-away cluster in a
temporary folder, listening on loopback on a free port; one fresh database per test.

Where PostgreSQL is not installed the tests that need it are skipped, saying how to install it, unless
``ADMISSIONS_REQUIRE_POSTGRES=1`` (set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user that Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="admissions-pg-"))
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        self._run(["initdb", "-D", str(data), "-A", "trust", "-U", "admissions", "--no-sync"])
        self._run([
            "pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "start",
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
        ])  # fmt: skip

    def _run(self, command: list[str]) -> None:
        subprocess.run(
            _as_postgres([str(self.binaries / command[0]), *command[1:]]), check=True, capture_output=True, timeout=120
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://admissions@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database's URL."""
        import sqlalchemy as sa

        name = f"jobs_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(["pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"])
        time.sleep(0.2)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    binaries = _binaries()
    if binaries is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("ADMISSIONS_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(binaries)
    try:
        yield server
    finally:
        server.stop()
