"""The persistent batch-job store: jobs, their inputs and results in SQLite or PostgreSQL (SQLAlchemy Core).

BentoML's own ``@bentoml.task`` store is deleted at every server start, so jobs live here instead: in a
SQLite file by default (nothing to run), or in PostgreSQL when several API servers (replicas on several
hosts) share the jobs. Several API worker processes and servers may share the store. A job is taken with a
conditional UPDATE (only one process wins) that gives it a fresh ``claim_id`` and a lease; every later
write of that attempt (lease renewal, outcome) is conditional on the same ``claim_id``, so an attempt
whose lease ran out and whose job was taken again can no longer store anything: a job's outcome is
written exactly once. Features are stored column by column in the narrowest exact type
(service/packing.py) and results as float64 bytes: compact, no per-row encoding.

A job waiting out a model-service outage goes back to ``pending`` with ``retry_at`` and a ``note`` the
client can read; outages do not count as attempts, crashes (expired leases) do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service import dburl
from service.errors import (
    ConfigurationError,
    JobConflictError,
    JobStoreUnavailableError,
    NotFoundError,
    TooManyRequestsError,
)
from service.packing import pack_columns, unpack_columns
from service.predlog import PREDICTIONS

logger = logging.getLogger("admissions.jobs")
T = TypeVar("T")
PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
ACTIVE_JOBS_RETRY_S = 5.0  # what a user over the active-jobs limit is told to wait
MIN_FREE_BYTES = 1 << 20  # below this on a SQLite file's disk, /readyz says not ready (a job takes more)
WRITE_RETRY_S = (0.1, 0.2, 0.4, 0.8, 1.5)  # pauses between tries of an attempt's write: 3 s in all
_METADATA = sa.MetaData()
JOBS = sa.Table(
    "jobs",
    _METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),  # the user's stable id, not their name
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_features", sa.Integer, nullable=False),
    sa.Column("features", sa.LargeBinary, nullable=False),
    sa.Column("results", sa.LargeBinary, nullable=True),
    sa.Column("model_tag", sa.String(128), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    # Added in the second version of the schema (see _migrate):
    sa.Column("claim_id", sa.String(32), nullable=True),
    sa.Column("retry_at", sa.Float, nullable=True),
    sa.Column("unavailable_since", sa.Float, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
)
_SUMMARY = [c for c in JOBS.c if c.name not in ("features", "results")]
# A job's features and results, apart from its row: SQLite rewrites a whole row, blobs included, on
# every UPDATE (a claim, each lease renewal, the outcome): 0.9 s each for a million-row job. The jobs
# table's own blob columns are still read for jobs stored before this table existed.
JOB_DATA = sa.Table(
    "job_data",
    _METADATA,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # COLUMNS or RESULTS (FEATURES: read, no longer written)
    sa.Column("data", sa.LargeBinary, nullable=False),
)
COLUMNS, FEATURES, RESULTS = "columns", "features", "results"  # packed columns; raw float64 rows; float64
# Failed logins per key in the current window (service/throttle.py): shared by every worker and replica.
LOGIN_FAILURES = sa.Table(
    "login_failures",
    _METADATA,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class Job:
    """A job's state, without its (possibly large) features and results."""

    id: str
    owner: str
    status: str
    n_rows: int
    model_tag: str | None
    error: str | None
    attempts: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    claim_id: str | None = None
    retry_at: float | None = None
    unavailable_since: float | None = None
    note: str | None = None

    def as_status(self) -> dict[str, Any]:
        """The JSON body of a status response."""
        return {
            "job_id": self.id,
            "status": self.status,
            "rows": self.n_rows,
            "model_tag": self.model_tag,
            "error": self.error,
            "note": self.note,
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "next_attempt_at": _iso(self.retry_at) if self.status == PENDING else None,
        }


class JobStore:
    """Jobs in one database; every method is a short transaction, safe from threads and processes.

    ``where`` is a SQLite file's path or a SQLAlchemy database URL (``postgresql://...``). Constructing a
    store does not touch the database; :meth:`open` creates (or upgrades) the schema and proves the
    database is readable and writable, raising :class:`JobStoreUnavailableError` with a sentence naming
    it otherwise. Any other method raises the same error when the database fails.
    """

    def __init__(self, where: Path | str, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts
        self.file: Path | None = None
        if isinstance(where, str) and "://" in where:
            try:
                url = dburl.check(where)
            except ConfigurationError as exc:
                raise JobStoreUnavailableError(exc.message) from None
            self.file = dburl.sqlite_file(url)  # sqlite:///path: a file like ADMISSIONS_JOBS_DB's, mode 0600
        else:
            self.file = Path(where)
        if self.file is not None:
            self.engine: Engine = sa.create_engine(
                f"sqlite:///{self.file}", connect_args={"timeout": 30, "check_same_thread": False}, future=True
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            try:
                self.engine = sa.create_engine(str(where), pool_pre_ping=True, future=True)
            except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
                shown = dburl.redacted(str(where))
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].replace(str(where), shown)
                raise JobStoreUnavailableError(
                    f"ADMISSIONS_JOBS_URL is not a usable database URL ({shown}): {reason}"
                ) from None
        self._identity: tuple[int, int] | None = None  # the SQLite file's (device, inode) once opened
        self._opened = False
        self._reopening = threading.Lock()
        # Named in messages and logs, never with a password (in its user part or its query string).
        self.path = str(self.file) if self.file else dburl.redacted(str(where))

    def open(self) -> JobStore:
        """Create the database (a file: mode 0600) and schema if needed and check it is usable;
        idempotent, and safe when several processes or servers do it at once."""
        if self.file is not None:
            _create_private_file(self.file)
        with _DatabaseGuard(self.path, "cannot be opened"):
            _create_schema(self.engine)
            with self.engine.begin() as conn:  # a write proves the file and its folder are writable
                conn.execute(JOBS.update().where(JOBS.c.id == "").values(note=None))
                conn.execute(sa.select(sa.func.count()).select_from(JOBS)).scalar_one()
        self._identity, self._opened = _identity(self.file), True
        return self

    def check(self) -> None:
        """A cheap write transaction: raises :class:`JobStoreUnavailableError` when the store is unusable."""
        # First the disk: the write below changes no page, so on a full disk it may well pass (or fail as
        # a "disk I/O error") while every job upload fails.
        if self.file is not None:
            try:
                disk = os.statvfs(self.file.parent)
            except OSError as exc:
                raise JobStoreUnavailableError(f"jobs database {self.path} is not usable: {exc.strerror}") from None
            free = disk.f_bavail * disk.f_frsize
            if free < MIN_FREE_BYTES:
                raise JobStoreUnavailableError(
                    f"jobs database {self.path} is not usable: its disk is full ({free // 1024} KiB free, "
                    f"{MIN_FREE_BYTES // 1024} KiB needed)"
                )
        with self.guard("is not usable"), self.engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.id == "").values(note=None))

    def submit(self, owner: str, features: np.ndarray, max_active: int | None = None) -> Job:
        """Store a new pending job; ``features`` is an (n_rows, n_features) array. With ``max_active``, an
        owner who already has that many jobs pending or running gets :class:`TooManyRequestsError`."""
        matrix = np.asarray(features, dtype=np.float64)
        packed = pack_columns(matrix)  # before the transaction: it holds SQLite's write lock
        row = {
            "id": uuid.uuid4().hex,
            "owner": owner,
            "status": PENDING,
            "n_rows": matrix.shape[0],
            "n_features": matrix.shape[1],
            "features": b"",  # in JOB_DATA
            "attempts": 0,
            "created_at": time.time(),
        }
        with self.guard("cannot store the job"), self.engine.begin() as conn:
            if max_active is not None:
                active = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(JOBS)
                    .where(JOBS.c.owner == owner, JOBS.c.status.in_((PENDING, RUNNING)))
                ).scalar_one()
                if active >= max_active:
                    raise TooManyRequestsError(
                        f"you have {active} jobs waiting or running, the most one user may have: "
                        "submit more when one has finished",
                        ACTIVE_JOBS_RETRY_S,
                    )
            conn.execute(JOBS.insert().values(**row))
            conn.execute(JOB_DATA.insert().values(job_id=row["id"], kind=COLUMNS, data=packed))
        return self.get(row["id"])

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job, or :class:`NotFoundError` if there is none with that id (for that owner, if given)."""
        with self.guard("cannot be read"), self.engine.connect() as conn:
            row = conn.execute(sa.select(*_SUMMARY).where(JOBS.c.id == job_id)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFoundError(f"no job with id {job_id!r}")
        return Job(**{k: v for k, v in row._mapping.items() if k in Job.__dataclass_fields__})

    def features(self, job_id: str) -> np.ndarray:
        with self.guard("cannot be read"), self.engine.connect() as conn:
            packed = _data(conn, job_id, COLUMNS)
            if packed is None:  # stored by an earlier version: float64 rows, in JOB_DATA or in its row
                width = conn.execute(sa.select(JOBS.c.n_features).where(JOBS.c.id == job_id)).scalar_one()
                rows = _data(conn, job_id, FEATURES, JOBS.c.features) or b""
        if packed is not None:
            return unpack_columns(packed)
        return np.frombuffer(rows, dtype=np.float64).reshape(-1, width)

    def results(self, job_id: str, owner: str | None = None) -> tuple[Job, np.ndarray | None]:
        """The job and its predictions (None unless completed)."""
        job = self.get(job_id, owner)
        if job.status != COMPLETED:
            return job, None
        with self.guard("cannot be read"), self.engine.connect() as conn:
            blob = _data(conn, job_id, RESULTS, JOBS.c.results) or b""
        return job, np.frombuffer(blob, dtype=np.float64)

    def claim(self, lease_s: float) -> Job | None:
        """Take the oldest runnable job (pending and due, or running with an expired lease), or None.

        A job whose attempts (crashes, not outages) exceed ``max_attempts`` is failed instead."""
        now = time.time()
        claim_id = uuid.uuid4().hex
        runnable = _runnable(now)
        with self.guard("cannot be read"), self.engine.begin() as conn:
            candidates = conn.execute(
                sa.select(JOBS.c.id).where(runnable).order_by(JOBS.c.created_at).limit(8)
            ).scalars()
            for job_id in list(candidates):
                taken = conn.execute(
                    JOBS.update()
                    .where(JOBS.c.id == job_id, runnable)
                    .values(
                        status=RUNNING,
                        started_at=now,
                        lease_until=now + lease_s,
                        attempts=JOBS.c.attempts + 1,
                        claim_id=claim_id,
                        retry_at=None,
                    )
                )
                if taken.rowcount == 1:
                    break
            else:
                return None
        job = self.get(job_id)
        if job.attempts > self.max_attempts:
            self.fail(job, f"gave up after {self.max_attempts} attempts that did not finish (worker crashes?)")
            return None
        return job

    def extend(self, job: Job, lease_s: float) -> bool:
        """Renew the lease of this attempt; False when the attempt lost the job (its lease ran out)."""

        def renew() -> bool:
            with self.engine.begin() as conn:
                return conn.execute(_this_attempt(job).values(lease_until=time.time() + lease_s)).rowcount == 1

        return self._retrying("cannot renew a lease", renew)

    def complete(self, job: Job, predictions: np.ndarray, model_tag: str, log: dict[str, Any] | None = None) -> bool:
        """Store the outcome of this attempt; False (nothing written) when the attempt lost the job. ``log``,
        the job's rows as a prediction-log chunk (service/predlog.py), is written in the same transaction:
        a completed job's rows are in the log exactly once."""
        blob = np.ascontiguousarray(predictions, dtype=np.float64).tobytes()
        return self._finish(job, blob, log, status=COMPLETED, model_tag=model_tag, note=None)

    def fail(self, job: Job, message: str) -> bool:
        return self._finish(job, status=FAILED, error=message, note=None)

    def defer(self, job: Job, note: str, delay_s: float) -> Job:
        """Back to pending until ``delay_s`` from now: the model service is unavailable. The attempt
        does not count, and the job remembers since when the service has been unavailable."""
        now = time.time()

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    _this_attempt(job).values(
                        status=PENDING,
                        lease_until=None,
                        claim_id=None,
                        attempts=JOBS.c.attempts - 1,
                        retry_at=now + delay_s,
                        unavailable_since=sa.func.coalesce(JOBS.c.unavailable_since, now),
                        note=note,
                    )
                )

        self._retrying("cannot defer the job", write)
        return self.get(job.id)

    def release(self, job: Job) -> None:
        """Put a running job back to pending (on shutdown), so the next process takes it at once."""

        def write() -> None:
            with self.engine.begin() as conn:
                conn.execute(
                    _this_attempt(job).values(
                        status=PENDING, lease_until=None, claim_id=None, attempts=JOBS.c.attempts - 1
                    )
                )

        self._retrying("cannot release the job", write)

    def retry(self, job_id: str, owner: str) -> Job:
        """A failed job back to pending, by its owner, without uploading it again."""
        job = self.get(job_id, owner)
        with self.guard("cannot retry the job"), self.engine.begin() as conn:
            reset = conn.execute(
                JOBS.update()
                .where(JOBS.c.id == job_id, JOBS.c.status == FAILED)
                .values(
                    status=PENDING,
                    error=None,
                    note="retried by its owner",
                    attempts=0,
                    finished_at=None,
                    started_at=None,
                    retry_at=None,
                    unavailable_since=None,
                )
            )
        if reset.rowcount != 1:
            raise JobConflictError(f"job {job_id} is {job.status}: only a failed job can be retried", status=job.status)
        return self.get(job_id)

    def backlog(self) -> tuple[int, float | None]:
        """Jobs waiting (pending) and the creation time of the oldest of them (None when none waits)."""
        with self.guard("cannot be read"), self.engine.connect() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(JOBS.c.created_at)).where(JOBS.c.status == PENDING)
            ).one()
        return int(count), oldest

    def has_runnable(self) -> bool:
        with self.guard("cannot be read"), self.engine.connect() as conn:
            return conn.execute(sa.select(JOBS.c.id).where(_runnable(time.time())).limit(1)).first() is not None

    def close(self) -> None:
        self.engine.dispose()

    def _finish(self, job: Job, results: bytes | None = None, log: dict[str, Any] | None = None, **values: Any) -> bool:
        """The outcome, in one transaction with the results: both or neither, and only by this attempt."""

        def write() -> bool:
            with self.engine.begin() as conn:
                done = conn.execute(
                    _this_attempt(job).values(
                        finished_at=time.time(), lease_until=None, retry_at=None, unavailable_since=None, **values
                    )
                )
                if done.rowcount == 1 and results is not None:
                    conn.execute(JOB_DATA.delete().where(JOB_DATA.c.job_id == job.id, JOB_DATA.c.kind == RESULTS))
                    conn.execute(JOB_DATA.insert().values(job_id=job.id, kind=RESULTS, data=results))
                if done.rowcount == 1 and log is not None:
                    conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.request_id == job.id))  # a retried write
                    conn.execute(PREDICTIONS.insert().values(**log))
                    if not log["features"]:  # the job's packed columns, copied in the database, not in memory
                        packed = sa.select(JOB_DATA.c.data).where(
                            JOB_DATA.c.job_id == job.id, JOB_DATA.c.kind == COLUMNS
                        )
                        update = PREDICTIONS.update().where(PREDICTIONS.c.request_id == job.id)
                        conn.execute(update.values(features=packed.scalar_subquery()))
                if done.rowcount == 1:
                    return True
                # A retry after a commit whose answer was lost: this attempt's outcome is already stored.
                mine = (JOBS.c.id == job.id) & (JOBS.c.claim_id == job.claim_id) & (JOBS.c.status == values["status"])
                return conn.execute(sa.select(JOBS.c.id).where(mine)).first() is not None

        return self._retrying("cannot store the job's outcome", write)

    def _retrying(self, what: str, write: Callable[[], T]) -> T:
        """An attempt's write, tried again for a few seconds: a database restart (PostgreSQL's takes
        ~0.2 s) or a brief SQLite write error would otherwise cost the running job its whole lease.
        Every such write is conditional on the attempt's claim, so trying again is safe."""
        for pause in (*WRITE_RETRY_S, None):
            try:
                with self.guard(what):
                    return write()
            except JobStoreUnavailableError as exc:
                if pause is None:
                    raise
                logger.warning("%s; trying again in %.1f s", exc.message, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def guard(self, what: str) -> _DatabaseGuard:
        if self.file is not None and self._opened and _identity(self.file) != self._identity:
            self._recreate()
        return _DatabaseGuard(self.path, what)

    def _recreate(self) -> None:
        """The SQLite file was deleted (or replaced) while the server ran. Left alone, open connections
        would go on writing to the deleted file and new ones would find an empty file created 0644 with
        no tables: every job route 503 until a restart. Instead the file is created again, 0600 and with
        its schema, and said so loudly: the jobs stored in the deleted file are gone with it. (A file
        put there in its place, a restored backup, is opened as it is.) A stat per transaction: ~2 us."""
        with self._reopening:
            if self.file is None or _identity(self.file) == self._identity:
                return  # another thread did it
            if not self.file.exists():
                for stale in (f"{self.file}-wal", f"{self.file}-shm"):  # the deleted database's own
                    with contextlib.suppress(OSError):
                        os.unlink(stale)
            logger.error("jobs database %s was deleted or replaced while serving: opening it again", self.file)
            self.engine.dispose()  # the pooled connections still point at the deleted file
            self.open()


def _data(conn: Any, job_id: str, kind: str, legacy: sa.Column[Any] | None = None) -> bytes | None:
    """A job's data of ``kind`` from JOB_DATA, or None; with ``legacy``, a job stored before JOB_DATA
    existed has it in that column of its jobs row instead."""
    where = (JOB_DATA.c.job_id == job_id) & (JOB_DATA.c.kind == kind)
    blob = conn.execute(sa.select(JOB_DATA.c.data).where(where)).scalar()
    if blob is None and legacy is not None:
        blob = conn.execute(sa.select(legacy).where(JOBS.c.id == job_id)).scalar_one()
    return None if blob is None else bytes(blob)


def _identity(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if path is not None else None
    except OSError:
        return None
    return None if stat is None else (stat.st_dev, stat.st_ino)


def _create_private_file(path: Path) -> None:
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise JobStoreUnavailableError(f"jobs database {path} cannot be created: {folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # private from the first byte
    except OSError as exc:
        raise JobStoreUnavailableError(f"jobs database {path} cannot be created: {exc.strerror}") from None


class _DatabaseGuard:
    """Turns a database error into a :class:`JobStoreUnavailableError` naming the database and the problem."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, _tb: Any) -> None:
        if isinstance(exc, sa.exc.DBAPIError | sa.exc.OperationalError):
            reason = (str(getattr(exc, "orig", exc)) or type(exc).__name__).strip().splitlines()[0]
            raise JobStoreUnavailableError(f"jobs database {self.path} {self.what}: {reason}") from None


def _runnable(now: float) -> Any:
    due = sa.or_(JOBS.c.retry_at.is_(None), JOBS.c.retry_at <= now)
    return sa.or_(
        sa.and_(JOBS.c.status == PENDING, due),
        sa.and_(JOBS.c.status == RUNNING, JOBS.c.lease_until < now),
    )


def _this_attempt(job: Job) -> Any:
    """An UPDATE of ``job`` that matches only while the attempt that claimed it still holds it."""
    return JOBS.update().where(JOBS.c.id == job.id, JOBS.c.status == RUNNING, JOBS.c.claim_id == job.claim_id)


_SCHEMA_LOCK = 0x61646D6973  # any constant: PostgreSQL's advisory lock id for schema changes


def _create_schema(engine: Engine) -> None:
    """Create or upgrade the schema. ``create_all`` checks, then creates, so processes starting at once
    can race: PostgreSQL serialises them with an advisory lock; on SQLite the loser's "already exists"
    is harmless, so it is ignored and the check repeated."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})"))
            _METADATA.create_all(conn)
            PREDICTIONS.metadata.create_all(conn)  # the prediction log lives in the jobs database
            _migrate(conn)
        return
    for _ in range(3):
        try:
            _METADATA.create_all(engine)
            PREDICTIONS.metadata.create_all(engine)  # the prediction log lives in the jobs database
            break
        except sa.exc.OperationalError as exc:
            if "already exists" not in str(exc):
                raise
    try:
        with engine.begin() as conn:
            _migrate(conn)
    except sa.exc.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


def _migrate(conn: Any) -> None:
    """Add the columns a jobs table of the first schema version lacks (added, never altered); new
    tables come from ``create_all``."""
    present = {column["name"] for column in sa.inspect(conn).get_columns("jobs")}
    for column in JOBS.c:
        if column.name not in present:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE jobs ADD COLUMN {column.name} {kind}"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (status polls) proceed while a job's results are written."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
