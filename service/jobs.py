"""The persistent batch-job store: jobs, their inputs and results in SQLite (SQLAlchemy Core).

BentoML's own ``@bentoml.task`` store is deleted at every server start, so jobs live here instead, in a
file that survives restarts. Several API worker processes may share the file: a job is taken with a
conditional UPDATE (only one process wins) and holds a lease, so a job left ``running`` by a process
that died is taken again once its lease has run out. Features and results are stored as float64
bytes, which is compact and needs no per-row encoding.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.errors import NotFoundError

PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"
_METADATA = sa.MetaData()
JOBS = sa.Table(
    "jobs",
    _METADATA,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False, index=True),
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
)
_SUMMARY = [c for c in JOBS.c if c.name not in ("features", "results")]


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

    def as_status(self) -> dict[str, Any]:
        """The JSON body of a status response."""
        return {
            "job_id": self.id,
            "status": self.status,
            "rows": self.n_rows,
            "model_tag": self.model_tag,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


class JobStore:
    """Jobs in one SQLite file; every method is a short transaction, safe from threads and processes."""

    def __init__(self, path: Path, max_attempts: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_attempts = max_attempts
        self.engine: Engine = sa.create_engine(
            f"sqlite:///{path}", connect_args={"timeout": 30, "check_same_thread": False}, future=True
        )
        sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        _METADATA.create_all(self.engine)

    def submit(self, owner: str, features: np.ndarray) -> Job:
        """Store a new pending job; ``features`` is an (n_rows, n_features) array."""
        matrix = np.ascontiguousarray(features, dtype=np.float64)
        row = {
            "id": uuid.uuid4().hex,
            "owner": owner,
            "status": PENDING,
            "n_rows": matrix.shape[0],
            "n_features": matrix.shape[1],
            "features": matrix.tobytes(),
            "attempts": 0,
            "created_at": time.time(),
        }
        with self.engine.begin() as conn:
            conn.execute(JOBS.insert().values(**row))
        return self.get(row["id"])

    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job, or :class:`NotFoundError` if there is none with that id (for that owner, if given)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_SUMMARY).where(JOBS.c.id == job_id)).first()
        if row is None or (owner is not None and row.owner != owner):
            raise NotFoundError(f"no job with id {job_id!r}")
        return Job(**{k: v for k, v in row._mapping.items() if k in Job.__dataclass_fields__})

    def features(self, job_id: str) -> np.ndarray:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(JOBS.c.features, JOBS.c.n_features).where(JOBS.c.id == job_id)).one()
        return np.frombuffer(row.features, dtype=np.float64).reshape(-1, row.n_features)

    def results(self, job_id: str, owner: str | None = None) -> tuple[Job, np.ndarray | None]:
        """The job and its predictions (None unless completed)."""
        job = self.get(job_id, owner)
        if job.status != COMPLETED:
            return job, None
        with self.engine.connect() as conn:
            blob = conn.execute(sa.select(JOBS.c.results).where(JOBS.c.id == job_id)).scalar_one()
        return job, np.frombuffer(blob, dtype=np.float64)

    def claim(self, lease_s: float) -> Job | None:
        """Take the oldest runnable job (pending, or running with an expired lease), or None."""
        now = time.time()
        runnable = sa.or_(JOBS.c.status == PENDING, sa.and_(JOBS.c.status == RUNNING, JOBS.c.lease_until < now))
        with self.engine.begin() as conn:
            candidates = conn.execute(
                sa.select(JOBS.c.id).where(runnable).order_by(JOBS.c.created_at).limit(8)
            ).scalars()
            for job_id in list(candidates):
                taken = conn.execute(
                    JOBS.update()
                    .where(JOBS.c.id == job_id, runnable)
                    .values(status=RUNNING, started_at=now, lease_until=now + lease_s, attempts=JOBS.c.attempts + 1)
                )
                if taken.rowcount == 1:
                    break
            else:
                return None
        job = self.get(job_id)
        if job.attempts > self.max_attempts:
            self.fail(job_id, f"gave up after {self.max_attempts} attempts")
            return None
        return job

    def extend(self, job_id: str, lease_s: float) -> None:
        """Keep a long job's lease alive."""
        with self.engine.begin() as conn:
            conn.execute(JOBS.update().where(JOBS.c.id == job_id).values(lease_until=time.time() + lease_s))

    def complete(self, job_id: str, predictions: np.ndarray, model_tag: str) -> None:
        blob = np.ascontiguousarray(predictions, dtype=np.float64).tobytes()
        self._finish(job_id, status=COMPLETED, results=blob, model_tag=model_tag)

    def fail(self, job_id: str, message: str) -> None:
        self._finish(job_id, status=FAILED, error=message)

    def release(self, job_id: str) -> None:
        """Put a running job back to pending (on shutdown), so the next process takes it at once."""
        with self.engine.begin() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.id == job_id, JOBS.c.status == RUNNING)
                .values(status=PENDING, lease_until=None, attempts=JOBS.c.attempts - 1)
            )

    def has_runnable(self) -> bool:
        now = time.time()
        runnable = sa.or_(JOBS.c.status == PENDING, sa.and_(JOBS.c.status == RUNNING, JOBS.c.lease_until < now))
        with self.engine.connect() as conn:
            return conn.execute(sa.select(JOBS.c.id).where(runnable).limit(1)).first() is not None

    def close(self) -> None:
        self.engine.dispose()

    def _finish(self, job_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                JOBS.update().where(JOBS.c.id == job_id).values(finished_at=time.time(), lease_until=None, **values)
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (status polls) proceed while a job's results are written."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
