"""The prediction log: every answered prediction, with who asked, which model answered, the inputs, the
chance and its interval; and the real outcomes recorded against them later.

It lives in the jobs database (SQLite by default, PostgreSQL with ``ADMISSIONS_JOBS_URL``; its tables are
created with the jobs', service/jobs.py), as chunks: one
database row per request (a ``/predict_batch`` of 100,000 applicants is one row), its columns packed as
the jobs store packs them (service/packing.py). A prediction's id is ``<request id>-<row>``: the request
id is time-ordered hex, the row its position in the chunk (``/predict`` answers written together share
a request id and count up).

Writing is off the request path. ``/predict`` answers are collected in memory and written together,
one chunk per (user, model, interval level), at most every ``FLUSH_S`` seconds by a background thread;
``/predict_batch`` answers go through the same buffer as chunks of their own. So a worker killed with
SIGKILL loses at most the predictions of its last ``FLUSH_S`` seconds (and never more than
``MAX_BUFFERED_ROWS``: past that a request waits for the write). While the database is down, the rows
are kept and written when it is back; only past ``MAX_BUFFERED_ROWS`` the oldest are dropped, counted
in ``admissions_prediction_log_dropped_total`` and logged: predictions go on being answered. A job's
rows are written in the same transaction as the job's outcome (service/jobs.py), so they are there
exactly when the job completed.

Outcomes (``POST /outcomes``) are kept in their own table, one row per prediction, with a copy of what
was predicted (model, time, chance, interval), so realised error and coverage are one SQL aggregate.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import bentoml
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.contract import FEATURE_NAMES, TARGET
from service.errors import InvalidInputError, JobStoreUnavailableError
from service.packing import pack_columns, unpack_columns
from service.quiet import RateLimited

logger = logging.getLogger("admissions.predlog")
FLUSH_S = 0.5
RECENT_ROWS = 2_000  # rows of a large chunk kept apart for the drift monitor (its window is 500 by default)
MAX_BUFFERED_ROWS = 200_000  # past this a request waits for the write instead of growing the buffer
DELETE_BATCH = 500  # chunks removed per transaction by the retention sweep
_FAILURE_LOG = RateLimited()  # a database down for an hour: a few lines a minute, not two a second
DROPPED = bentoml.metrics.Counter(
    name="admissions_prediction_log_dropped",
    documentation="predictions not recorded: the database was down and the log's buffer was full",
)
_METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "prediction_log",
    _METADATA,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("at", sa.Float, nullable=False, index=True),  # unix time of the first row
    sa.Column("user_id", sa.String(64), nullable=False),  # the user's stable id (service/users.py)
    sa.Column("model_tag", sa.String(128), nullable=False),
    sa.Column("route", sa.String(16), nullable=False),  # predict, predict_batch, jobs
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("features", sa.LargeBinary, nullable=False),  # packed (n, 7), FEATURE_NAMES order
    sa.Column("chances", sa.LargeBinary, nullable=False),  # float64 (n,)
    sa.Column("intervals", sa.LargeBinary, nullable=True),  # float64 (n, 2); null: asked without one
    sa.Column("interval_level", sa.Float, nullable=True),
    sa.Column("times", sa.LargeBinary, nullable=True),  # float64 (n,) per-row times; null: all at ``at``
    # The last RECENT_ROWS rows' features, packed apart when the chunk is larger: the drift monitor reads
    # these, not a million-row job's whole columns (~100 MB in a worker under a memory limit).
    sa.Column("recent", sa.LargeBinary, nullable=True),
    sa.Index("ix_prediction_log_model_at", "model_tag", "at"),
)
OUTCOMES = sa.Table(
    "prediction_outcomes",
    _METADATA,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("outcome", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    # What was predicted, copied from the log (its chunk may be removed by retention before the outcome is):
    sa.Column("model_tag", sa.String(128), nullable=False),
    sa.Column("predicted_at", sa.Float, nullable=False),
    sa.Column("chance", sa.Float, nullable=False),
    sa.Column("interval_low", sa.Float, nullable=True),
    sa.Column("interval_high", sa.Float, nullable=True),
    sa.Column("interval_level", sa.Float, nullable=True),
    sa.Index("ix_prediction_outcomes_model_at", "model_tag", "predicted_at"),
)
EXPORT_COLUMNS = (
    "prediction_id",
    "at",
    "user_id",
    "model_tag",
    "route",
    *FEATURE_NAMES,
    "chance",
    "interval_low",
    "interval_high",
    "interval_level",
    "outcome",
)


def new_request_id(now: float | None = None) -> str:
    """Time-ordered and unguessable: 11 hex digits of milliseconds, then 12 random ones."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:011x}{secrets.token_hex(6)}"


_ID = re.compile(r"([0-9a-f]{1,32})-([0-9]{1,9})")  # request ids: ours (hex) or a job's (uuid4 hex)


def prediction_ids(request_id: str, rows: int) -> list[str]:
    return [f"{request_id}-{row}" for row in range(rows)]


def shown(value: Any) -> str:
    """``value`` as an error message quotes it, cut short: an answer over 4 KiB loses its message to
    "too many problems to list" (service/middleware/guard.py), and with it the row it names."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."


def parse_id(text: Any) -> tuple[str, int] | None:
    """``<request id>-<row>`` as (request id, row), or None when it is not one."""
    found = _ID.fullmatch(text) if isinstance(text, str) else None
    return (found.group(1), int(found.group(2))) if found else None


@dataclass
class _Open:
    """A chunk being filled with single predictions of one user, model and interval level."""

    request_id: str
    rows: list[list[float]] = field(default_factory=list)
    chances: list[float] = field(default_factory=list)
    intervals: list[tuple[float, float]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


class PredictionLog:
    """The log in the database of ``engine`` (the jobs store's); one instance per API worker."""

    def __init__(self, engine: Engine, where: str, flush_s: float = FLUSH_S) -> None:
        self.engine = engine
        self.where = where  # the database as named in messages (no password)
        self.flush_s = flush_s
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, float | None], _Open] = {}
        self._chunks: list[dict[str, Any]] = []  # ready to write
        self._buffered_rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._room = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.written = 0  # rows written by this process (for tests and the log line at shutdown)
        self.failing = False  # the last write failed: the database is down

    # --- recording (called on the request path: no I/O) -------------------------------------------

    def single(
        self,
        values: list[float],
        chance: float,
        interval: tuple[float, float] | None,
        level: float | None,
        model_tag: str,
        user_id: str,
    ) -> str:
        """Record one /predict answer; returns its prediction id."""
        now = time.time()
        with self._lock:
            key = (user_id, model_tag, level)
            chunk = self._open.get(key)
            if chunk is None:
                chunk = self._open[key] = _Open(new_request_id(now))
            row = len(chunk.rows)
            chunk.rows.append(values)
            chunk.chances.append(chance)
            if interval is not None:
                chunk.intervals.append(interval)
            chunk.times.append(now)
            self._buffered_rows += 1
        return f"{chunk.request_id}-{row}"

    def batch(
        self,
        rows: np.ndarray,
        chances: np.ndarray,
        intervals: np.ndarray | None,
        level: float | None,
        model_tag: str,
        user_id: str,
    ) -> str:
        """Record one /predict_batch answer; returns its request id (prediction ids: ``<it>-<row>``)."""
        request_id = new_request_id()
        chunk = chunk_row(request_id, "predict_batch", rows, chances, intervals, level, model_tag, user_id)
        with self._lock:
            self._chunks.append(chunk)
            self._buffered_rows += len(chances)
            if self.failing and self._buffered_rows > MAX_BUFFERED_ROWS:
                self._drop_oldest()
        if len(chances) >= 10_000:
            self._wake.set()
        return request_id

    def wait_for_room(self, timeout_s: float = 30.0) -> None:
        """Block (call it in a thread) while more than ``MAX_BUFFERED_ROWS`` rows wait to be written,
        unless the database is down (then the oldest rows are dropped instead: see the module doc)."""
        with self._room:
            if self.failing:
                if self._buffered_rows > MAX_BUFFERED_ROWS:
                    self._drop_oldest()
                return
            if self._buffered_rows > MAX_BUFFERED_ROWS:
                self._wake.set()
                self._room.wait_for(lambda: self._buffered_rows <= MAX_BUFFERED_ROWS, timeout_s)

    def _drop_oldest(self) -> None:
        """With the lock held: drop the oldest ready chunks until the buffer is back under its bound."""
        dropped = 0
        while self._chunks and self._buffered_rows > MAX_BUFFERED_ROWS:
            rows = self._chunks.pop(0)["n_rows"]
            self._buffered_rows -= rows
            dropped += rows
        if dropped:
            DROPPED.inc(dropped)
            logger.error(
                "prediction log: %s is down and %d rows are waiting: dropped the oldest %d",
                self.where,
                MAX_BUFFERED_ROWS,
                dropped,
            )

    @property
    def crowded(self) -> bool:
        return self._buffered_rows > MAX_BUFFERED_ROWS

    # --- writing ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="admissions-predlog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is buffered and stop the writer (at shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # the database is down: keep the rows, try again next time
                if _FAILURE_LOG.admit() is not None:
                    logger.error(
                        "prediction log: cannot write to %s (%s); %d rows kept to try again",
                        self.where,
                        type(exc).__name__,
                        self._buffered_rows,
                    )
                time.sleep(self.flush_s)

    def flush(self) -> int:
        """Write every buffered chunk in one transaction; returns the rows written."""
        with self._lock:
            chunks = self._chunks + [_closed(key, chunk) for key, chunk in self._open.items()]
            self._chunks, self._open = [], {}
        if not chunks:
            return 0
        rows = sum(chunk["n_rows"] for chunk in chunks)
        try:
            with self.engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), chunks)
        except Exception:
            with self._lock:  # back in front of anything buffered meanwhile, to be written next time
                self._chunks = chunks + self._chunks
                self.failing = True
            raise
        self.failing = False
        with self._room:
            self._buffered_rows -= rows
            self._room.notify_all()
        self.written += rows
        return rows

    # --- reading ---------------------------------------------------------------------------------------

    def chunks(
        self, start: float | None = None, end: float | None = None, model_tag: str | None = None
    ) -> Iterator[Any]:
        """Stored chunks, oldest first, filtered by time (``start <= at < end``) and model."""
        query = sa.select(PREDICTIONS).order_by(PREDICTIONS.c.at, PREDICTIONS.c.request_id)
        if start is not None:
            query = query.where(PREDICTIONS.c.at >= start)
        if end is not None:
            query = query.where(PREDICTIONS.c.at < end)
        if model_tag is not None:
            query = query.where(PREDICTIONS.c.model_tag == model_tag)
        with self.engine.connect() as conn:
            yield from conn.execution_options(stream_results=True, yield_per=100).execute(query)

    def recent_features(self, model_tag: str, rows: int, since: float) -> np.ndarray:
        """Up to ``rows`` of the newest logged inputs of ``model_tag`` since ``since``, newest chunks first."""
        query = (
            sa.select(PREDICTIONS.c.request_id, PREDICTIONS.c.recent)
            .where(PREDICTIONS.c.model_tag == model_tag, PREDICTIONS.c.at >= since)
            .order_by(PREDICTIONS.c.at.desc())
        )
        found: list[np.ndarray] = []
        total = 0
        with self.engine.connect() as conn:
            for request_id, recent in conn.execute(query):
                packed = recent
                if packed is None:  # a small chunk: its own columns
                    packed = conn.execute(
                        sa.select(PREDICTIONS.c.features).where(PREDICTIONS.c.request_id == request_id)
                    ).scalar_one()
                found.append(unpack_columns(packed)[::-1])  # newest rows first
                total += len(found[-1])
                if total >= rows:
                    break
        if not found:
            return np.empty((0, len(FEATURE_NAMES)))
        return np.concatenate(found)[:rows]

    def models_since(self, since: float) -> list[str]:
        query = sa.select(PREDICTIONS.c.model_tag).where(PREDICTIONS.c.at >= since).distinct()
        with self.engine.connect() as conn:
            return sorted(str(tag) for tag in conn.execute(query).scalars())

    def remove_older_than(self, cutoff: float) -> int:
        """Remove chunks (and outcomes of predictions) older than ``cutoff``, ``DELETE_BATCH`` chunks per
        transaction, so the sweep never holds the database for long. Returns the chunks removed."""
        removed = 0
        while True:
            with self.engine.begin() as conn:
                ids = list(
                    conn.execute(
                        sa.select(PREDICTIONS.c.request_id).where(PREDICTIONS.c.at < cutoff).limit(DELETE_BATCH)
                    ).scalars()
                )
                if ids:
                    conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.request_id.in_(ids)))
                conn.execute(OUTCOMES.delete().where(OUTCOMES.c.predicted_at < cutoff))
            removed += len(ids)
            if len(ids) < DELETE_BATCH:
                return removed

    # --- outcomes ------------------------------------------------------------------------------------

    def record_outcomes(self, items: list[tuple[Any, Any]], user_id: str, rows: list[int] | None = None) -> int:
        """Record ``(prediction id, outcome)`` pairs, all or none; a 4xx naming the first bad row
        (1-based, as a person counts the rows they sent: ``rows``, else their positions) otherwise.
        Returns how many were recorded."""
        wanted: dict[tuple[str, int], tuple[int, float]] = {}
        numbers = rows if rows is not None else range(1, len(items) + 1)
        for index, (text, value) in zip(numbers, items, strict=True):
            key = parse_id(text)
            if key is None:
                raise InvalidInputError(f"row {index}: {shown(text)} is not a prediction id", row=index)
            # An int is finite however large (np.isfinite(2**64) raised TypeError: a 500); the range check refuses it.
            finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
            if isinstance(value, bool) or not finite:
                raise InvalidInputError(f"row {index}: outcome must be a number, got {shown(value)}", row=index)
            if not TARGET.minimum <= value <= TARGET.maximum:
                bounds = f"between {TARGET.minimum:g} and {TARGET.maximum:g}"
                raise InvalidInputError(f"row {index}: outcome must be {bounds}, got {shown(value)}", row=index)
            if key in wanted:
                raise InvalidInputError(
                    f"row {index}: prediction {text} appears twice (first in row {wanted[key][0]})", row=index
                )
            wanted[key] = (index, float(value))
        if not wanted:
            raise InvalidInputError("no outcomes: send at least one prediction id and outcome")
        now = time.time()
        by_request: dict[str, list[tuple[int, int, float]]] = {}
        for (request_id, row), (index, value) in wanted.items():
            by_request.setdefault(request_id, []).append((row, index, value))
        try:
            with self.engine.begin() as conn:
                records = []
                for request_id, wanted_rows in by_request.items():
                    chunk = conn.execute(sa.select(PREDICTIONS).where(PREDICTIONS.c.request_id == request_id)).first()
                    records.extend(_outcome_records(chunk, request_id, wanted_rows, now, user_id))
                known = conn.execute(
                    sa.select(OUTCOMES.c.request_id, OUTCOMES.c.row).where(OUTCOMES.c.request_id.in_(list(by_request)))
                ).all()
                recorded = {(r, row) for r, row in known}
                for record in records:
                    if (record["request_id"], record["row"]) in recorded:
                        index = wanted[record["request_id"], record["row"]][0]
                        raise OutcomeConflictError(
                            f"row {index}: prediction {record['request_id']}-{record['row']} already has an "
                            "outcome (outcomes are recorded once)",
                            row=index,
                        )
                conn.execute(OUTCOMES.insert(), records)
        except sa.exc.IntegrityError:  # another request recorded one of them meanwhile
            raise OutcomeConflictError("one of these predictions got an outcome meanwhile: send again") from None
        except sa.exc.SQLAlchemyError as exc:
            raise JobStoreUnavailableError(f"the prediction log in {self.where} is not usable: {exc}") from None
        return len(records)

    def realised(self, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """Per model: outcomes behind the figures, realised RMSE, and realised coverage per level, for the
        predictions made in ``[since, until)``."""
        error = (OUTCOMES.c.chance - OUTCOMES.c.outcome) * (OUTCOMES.c.chance - OUTCOMES.c.outcome)
        covered = sa.case(
            (
                (OUTCOMES.c.interval_low <= OUTCOMES.c.outcome) & (OUTCOMES.c.outcome <= OUTCOMES.c.interval_high),
                1,
            ),
            else_=0,
        )
        window = OUTCOMES.c.predicted_at >= since
        if until is not None:
            window &= OUTCOMES.c.predicted_at < until
        query = (
            sa.select(
                OUTCOMES.c.model_tag,
                OUTCOMES.c.interval_level,
                sa.func.count(),
                sa.func.sum(error),
                sa.func.sum(covered),
            )
            .where(window)
            .group_by(OUTCOMES.c.model_tag, OUTCOMES.c.interval_level)
        )
        with self.engine.connect() as conn:
            groups = conn.execute(query).all()
        models: dict[str, dict[str, Any]] = {}
        for tag, level, count, squared, inside in groups:
            entry = models.setdefault(tag, {"model_tag": tag, "outcomes": 0, "squared_error": 0.0, "coverage": {}})
            entry["outcomes"] += count
            entry["squared_error"] += float(squared or 0.0)
            if level is not None:
                entry["coverage"][f"{level:g}"] = {"outcomes": count, "coverage": float(inside) / count}
        for entry in models.values():
            entry["rmse"] = float(np.sqrt(entry.pop("squared_error") / entry["outcomes"]))
        return sorted(models.values(), key=lambda entry: entry["model_tag"])


class OutcomeConflictError(InvalidInputError):
    status = 409


def chunk_row(
    request_id: str,
    route: str,
    rows: np.ndarray,
    chances: np.ndarray,
    intervals: np.ndarray | None,
    level: float | None,
    model_tag: str,
    user_id: str,
    at: float | None = None,
    pack_features: bool = True,
) -> dict[str, Any]:
    """One chunk as a database row (also what service/jobs.py writes with a job's outcome). Without
    ``pack_features`` the features are left empty for the caller to fill: a job's are already packed in
    the jobs database, and packing a million rows again cost ~100 MB in a worker under a memory limit."""
    chances = np.ascontiguousarray(chances, dtype=np.float64)
    features = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
    if len(features) != len(chances):
        raise ValueError(f"{len(features)} rows but {len(chances)} chances")
    return {
        "request_id": request_id,
        "at": time.time() if at is None else at,
        "user_id": user_id,
        "model_tag": model_tag,
        "route": route,
        "n_rows": len(chances),
        "features": pack_columns(features) if pack_features else b"",
        "chances": chances.tobytes(),
        "intervals": None if intervals is None else np.ascontiguousarray(intervals, dtype=np.float64).tobytes(),
        "interval_level": level if intervals is not None else None,
        "times": None,
        "recent": pack_columns(features[-RECENT_ROWS:]) if len(features) > RECENT_ROWS else None,
    }


def _closed(key: tuple[str, str, float | None], chunk: _Open) -> dict[str, Any]:
    user_id, model_tag, level = key
    intervals = np.array(chunk.intervals, dtype=np.float64) if chunk.intervals else None
    row = chunk_row(
        chunk.request_id, "predict", np.array(chunk.rows), np.array(chunk.chances), intervals, level, model_tag, user_id
    )
    row["at"] = chunk.times[0]
    row["times"] = np.array(chunk.times, dtype=np.float64).tobytes()
    return row


def _outcome_records(
    chunk: Any, request_id: str, rows: list[tuple[int, int, float]], now: float, user_id: str
) -> list[dict[str, Any]]:
    if chunk is None:
        index = min(index for _, index, _ in rows)
        raise OutcomeNotFoundError(
            f"row {index}: no prediction {request_id}-... is in the log (a prediction is written to it within "
            f"{FLUSH_S:g} s of its answer; one older than the log's retention is gone)",
            row=index,
        )
    chances = np.frombuffer(chunk.chances, dtype=np.float64)
    intervals = None if chunk.intervals is None else np.frombuffer(chunk.intervals, dtype=np.float64).reshape(-1, 2)
    times = None if chunk.times is None else np.frombuffer(chunk.times, dtype=np.float64)
    records = []
    for row, index, value in rows:
        if row >= chunk.n_rows:
            raise OutcomeNotFoundError(
                f"row {index}: no prediction {request_id}-{row} is in the log (that request had {chunk.n_rows} rows)",
                row=index,
            )
        records.append(
            {
                "request_id": request_id,
                "row": row,
                "outcome": value,
                "recorded_at": now,
                "recorded_by": user_id,
                "model_tag": chunk.model_tag,
                "predicted_at": float(times[row]) if times is not None else chunk.at,
                "chance": float(chances[row]),
                "interval_low": float(intervals[row, 0]) if intervals is not None else None,
                "interval_high": float(intervals[row, 1]) if intervals is not None else None,
                "interval_level": chunk.interval_level,
            }
        )
    return records


class OutcomeNotFoundError(InvalidInputError):
    status = 404


def export_rows(log: PredictionLog, start: float | None, end: float | None, model_tag: str | None) -> Iterator[tuple]:
    """Every logged prediction in the range, one tuple per row in ``EXPORT_COLUMNS`` order, with its
    outcome when one was recorded."""
    for chunk in log.chunks(start, end, model_tag):
        features = unpack_columns(chunk.features)
        chances = np.frombuffer(chunk.chances, dtype=np.float64)
        intervals = None if chunk.intervals is None else np.frombuffer(chunk.intervals, dtype=np.float64).reshape(-1, 2)
        times = None if chunk.times is None else np.frombuffer(chunk.times, dtype=np.float64)
        with log.engine.connect() as conn:
            outcomes = dict(
                conn.execute(
                    sa.select(OUTCOMES.c.row, OUTCOMES.c.outcome).where(OUTCOMES.c.request_id == chunk.request_id)
                ).all()
            )
        for row in range(chunk.n_rows):
            low, high = (None, None) if intervals is None else (float(intervals[row, 0]), float(intervals[row, 1]))
            yield (
                f"{chunk.request_id}-{row}",
                float(times[row]) if times is not None else chunk.at,
                chunk.user_id,
                chunk.model_tag,
                chunk.route,
                *(float(value) for value in features[row]),
                float(chances[row]),
                low,
                high,
                chunk.interval_level if intervals is not None else None,
                outcomes.get(row),
            )
