"""The prediction log, outcomes, realised figures and drift (service/predlog.py, service/monitoring.py), on
SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.contract import FEATURE_NAMES
from core.profile import column_profile
from service import log_export, predlog, routes
from service.errors import InvalidInputError
from service.jobs import JobStore
from service.middleware import USER_KEY
from service.monitoring import MIN_DRIFT_ROWS, PSI_DRIFT, Monitor
from service.predlog import EXPORT_COLUMNS, PredictionLog, chunk_row, export_rows, parse_id
from tests.support.paths import RAW_DATA

TAG = "admissions:test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "sqlite":
        return JobStore(tmp_path / "jobs.sqlite").open()
    return JobStore(request.getfixturevalue("postgres").new_database()).open()


@pytest.fixture
def log(store: JobStore) -> PredictionLog:
    return PredictionLog(store.engine, store.path)


def vendored_rows() -> np.ndarray:
    frame = pd.read_csv(RAW_DATA)
    frame.columns = [name.strip() for name in frame.columns]
    names = ["GRE Score", "TOEFL Score", "University Rating", "SOP", "LOR", "CGPA", "Research"]
    return frame[names].to_numpy(dtype=np.float64)


def logged_rows(log: PredictionLog) -> list[tuple[Any, ...]]:
    return list(export_rows(log, None, None, None))


def test_single_predictions_are_written_together_with_ids_that_name_them(log: PredictionLog) -> None:
    first = log.single([320, 110, 4, 4.5, 4.0, 9.1, 1], 0.8, (0.7, 0.9), 0.9, TAG, "user-1")
    second = log.single([300, 100, 3, 3.0, 3.0, 8.0, 0], 0.6, (0.5, 0.7), 0.9, TAG, "user-1")
    other = log.single([300, 100, 3, 3.0, 3.0, 8.0, 0], 0.6, None, None, TAG, "user-2")
    assert logged_rows(log) == []  # nothing written on the request path
    assert log.flush() == 3
    rows = {row[0]: row for row in logged_rows(log)}
    assert set(rows) == {first, second, other}
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # one chunk per user, model and level
    record = dict(zip(EXPORT_COLUMNS, rows[first], strict=True))
    assert record["user_id"] == "user-1" and record["model_tag"] == TAG and record["route"] == "predict"
    assert [record[name] for name in FEATURE_NAMES] == [320, 110, 4, 4.5, 4.0, 9.1, 1]
    assert (record["chance"], record["interval_low"], record["interval_high"]) == (0.8, 0.7, 0.9)
    assert dict(zip(EXPORT_COLUMNS, rows[other], strict=True))["interval_low"] is None


def test_a_batch_is_one_chunk_and_its_rows_come_back_bit_for_bit(log: PredictionLog) -> None:
    rows = vendored_rows()
    chances = np.random.default_rng(1).random(len(rows))
    intervals = np.column_stack([chances - 0.1, chances + 0.1])
    request_id = log.batch(rows, chances, intervals, 0.9, TAG, "user-1")
    log.flush()
    exported = logged_rows(log)
    assert [row[0] for row in exported] == predlog.prediction_ids(request_id, len(rows))
    back = np.array([row[5:12] for row in exported])
    assert np.array_equal(back, rows)
    assert np.array_equal(np.array([row[12] for row in exported]), chances)


def test_outcomes_are_recorded_once_and_bad_ones_name_their_row(log: PredictionLog) -> None:
    request_id = log.batch(vendored_rows()[:3], np.array([0.5, 0.6, 0.7]), None, None, TAG, "user-1")
    log.flush()
    ids = predlog.prediction_ids(request_id, 3)
    cases: list[tuple[list[tuple[Any, Any]], int, str]] = [
        ([(ids[0], 0.5), ("not-an-id", 0.5)], 400, "row 2"),
        ([(ids[0], 1.5)], 400, "between 0 and 1"),
        ([(ids[0], "yes")], 400, "must be a number"),
        ([(ids[0], 0.5), (ids[0], 0.4)], 400, "appears twice"),
        ([(ids[0], 0.5), (f"{request_id}-3", 0.5)], 404, "had 3 rows"),
        ([("0123456789abcdef-0", 0.5)], 404, "row 1"),
        ([], 400, "no outcomes"),
    ]
    for items, status, says in cases:
        with pytest.raises(InvalidInputError) as refused:
            log.record_outcomes(items, "user-2")
        assert refused.value.status == status and says in refused.value.message, (items, refused.value.message)
    assert log.realised(0) == []  # all or none: nothing was recorded by the refused requests
    assert log.record_outcomes([(ids[0], 0.4), (ids[2], 1)], "user-2") == 2
    with pytest.raises(InvalidInputError) as again:
        log.record_outcomes([(ids[1], 0.6), (ids[2], 0.7)], "user-2")
    assert again.value.status == 409 and "row 2" in again.value.message
    outcomes = {row[0]: row[-1] for row in logged_rows(log)}
    assert outcomes == {ids[0]: 0.4, ids[1]: None, ids[2]: 1.0}


def test_realised_error_and_coverage_per_model_and_window(log: PredictionLog) -> None:
    chances = np.array([0.5, 0.6, 0.7, 0.8])
    intervals = np.column_stack([chances - 0.05, chances + 0.05])
    request_id = log.batch(vendored_rows()[:4], chances, intervals, 0.9, TAG, "u")
    log.flush()
    ids = predlog.prediction_ids(request_id, 4)
    log.record_outcomes(list(zip(ids, [0.5, 0.6, 0.9, 0.8], strict=True)), "u")  # one miss, by 0.2
    [figures] = log.realised(time.time() - 60)
    assert figures["model_tag"] == TAG and figures["outcomes"] == 4
    assert figures["rmse"] == pytest.approx(np.sqrt(0.2**2 / 4))
    assert figures["coverage"] == {"0.9": {"outcomes": 4, "coverage": 0.75}}
    assert log.realised(time.time() + 60) == []  # the window is by when the predictions were made


def test_retention_removes_old_predictions_in_bounded_batches(log: PredictionLog, monkeypatch: Any) -> None:
    monkeypatch.setattr(predlog, "DELETE_BATCH", 3)
    old = time.time() - 10 * 86_400
    with log.engine.begin() as conn:
        for index in range(7):
            chunk = chunk_row(f"old{index}", "predict_batch", vendored_rows()[:2], np.ones(2) / 2, None, None, TAG, "u")
            conn.execute(predlog.PREDICTIONS.insert().values(**{**chunk, "at": old}))
    log.batch(vendored_rows()[:2], np.ones(2) / 2, None, None, TAG, "u")
    log.flush()
    assert log.remove_older_than(time.time() - 86_400) == 7
    assert len(logged_rows(log)) == 2


def test_a_job_s_rows_are_logged_with_its_outcome_in_one_transaction(store: JobStore, log: PredictionLog) -> None:
    rows = vendored_rows()[:50]
    job = store.submit("user-1", rows)
    claimed = store.claim(30)
    assert claimed is not None and claimed.id == job.id
    chances = np.linspace(0.3, 0.8, 50)
    chunk = chunk_row(job.id, "jobs", rows, chances, None, None, TAG, job.owner, pack_features=False)
    assert store.complete(claimed, chances, TAG, chunk)
    exported = logged_rows(log)
    assert [row[0] for row in exported] == predlog.prediction_ids(job.id, 50)
    assert np.array_equal(np.array([row[5:12] for row in exported]), rows)  # copied from the job's own columns
    assert {row[4] for row in exported} == {"jobs"}
    lost = store.submit("user-1", rows)
    taken = store.claim(30)
    assert taken is not None and taken.id == lost.id
    stale = type(taken)(**{**vars(taken), "claim_id": "someone-else"})  # an attempt that lost its job
    assert not store.complete(stale, chances, TAG, chunk_row(lost.id, "jobs", rows, chances, None, None, TAG, "u"))
    assert {row[0].rsplit("-", 1)[0] for row in logged_rows(log)} == {job.id}


def test_while_the_database_is_down_rows_are_kept_then_written(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite").open()
    log = PredictionLog(store.engine, store.path)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prediction_log RENAME TO away")
    pid = log.single([320, 110, 4, 4.5, 4.0, 9.1, 1], 0.8, None, None, TAG, "u")
    with pytest.raises(Exception):  # noqa: B017 - any database error
        log.flush()
    assert log.failing
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE away RENAME TO prediction_log")
    assert log.flush() == 1 and not log.failing
    assert [row[0] for row in logged_rows(log)] == [pid]


def test_prediction_ids_parse_back_and_nothing_else_does() -> None:
    request_id = predlog.new_request_id()
    assert parse_id(f"{request_id}-12") == (request_id, 12)
    for bad in ("", "abc", "-1", "abc-", "abc-x", "abc--1", 5, None, "a" * 40 + "-1"):
        assert parse_id(bad) is None, bad


def profile_of(rows: np.ndarray) -> dict[str, Any]:
    return {name: column_profile(rows[:, column]) for column, name in enumerate(FEATURE_NAMES)}


def monitor_for(log: PredictionLog, store: JobStore, rows: np.ndarray) -> Monitor:
    monitor = Monitor(log, store, lambda: TAG, drift_window=500)
    monitor._profiles[TAG] = (profile_of(rows), 0.06)
    return monitor


def test_a_one_point_lower_cgpa_is_detected_and_unshifted_held_out_traffic_is_not(
    store: JobStore, log: PredictionLog
) -> None:
    """Training profile from 400 vendored rows; traffic drawn from the other 100 (the held-out kind), 500
    predictions; then the same applicants with CGPA one point lower."""
    rows = vendored_rows()
    train, held_out = rows[:400], rows[400:]
    monitor = monitor_for(log, store, train)
    draw = np.random.default_rng(7).integers(0, len(held_out), size=500)
    for row in held_out[draw[: MIN_DRIFT_ROWS - 1]]:
        log.single(row.tolist(), 0.7, None, None, TAG, "u")
    log.flush()
    assert monitor.refresh()["models"][TAG]["drift"]["psi"] == {}  # too few rows to judge: not judged
    for row in held_out[draw[MIN_DRIFT_ROWS - 1 :]]:
        log.single(row.tolist(), 0.7, None, None, TAG, "u")
    log.flush()
    calm = monitor.refresh()["models"][TAG]
    assert max(calm["drift"]["psi"].values()) < PSI_DRIFT, calm["drift"]
    assert not calm["retrain_recommended"]
    shifted = held_out[draw].copy()
    shifted[:, FEATURE_NAMES.index("cgpa")] -= 1.0
    log.batch(shifted, np.full(500, 0.7), None, None, TAG, "u")  # the newest 500 predictions
    log.flush()
    drifting = monitor.refresh()["models"][TAG]
    assert drifting["drift"]["psi"]["cgpa"] > PSI_DRIFT
    assert drifting["retrain_recommended"] and any("cgpa" in reason for reason in drifting["reasons"])
    assert all(drifting["drift"]["psi"][name] < PSI_DRIFT for name in FEATURE_NAMES if name != "cgpa")


def test_realised_error_over_the_margin_recommends_retraining(store: JobStore, log: PredictionLog) -> None:
    monitor = monitor_for(log, store, vendored_rows())
    chances = np.full(40, 0.7)
    request_id = log.batch(vendored_rows()[:40], chances, None, None, TAG, "u")
    log.flush()
    log.record_outcomes([(pid, 0.45) for pid in predlog.prediction_ids(request_id, 40)], "u")  # error 0.25
    figures = monitor.refresh()["models"][TAG]
    assert figures["realised"]["7d"]["rmse"] == pytest.approx(0.25)
    assert figures["retrain_recommended"] and "realised RMSE" in figures["reasons"][0]


def test_the_export_writes_every_column_for_every_row(log: PredictionLog, tmp_path: Path) -> None:
    log.batch(vendored_rows()[:5], np.full(5, 0.5), None, None, TAG, "u")
    log.flush()
    out = tmp_path / "export.csv"
    log_export.main(["--out", str(out)], engine=log.engine)
    table = list(csv.reader(io.StringIO(out.read_text())))
    assert tuple(table[0]) == EXPORT_COLUMNS and len(table) == 6


def test_an_export_of_a_model_with_no_predictions_says_so(
    log: PredictionLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log.batch(vendored_rows()[:5], np.full(5, 0.5), None, None, TAG, "u")
    log.flush()
    assert log_export.main(["--model", "admissions:typo", "--out", str(tmp_path / "e.csv")], engine=log.engine) == 0
    assert "no prediction of admissions:typo" in capsys.readouterr().err  # was a header and silence


def logged_for_outcomes(log: PredictionLog) -> str:
    request_id = log.batch(vendored_rows()[:3], np.array([0.5, 0.6, 0.7]), None, None, TAG, "user-1")
    log.flush()
    return f"{request_id}-0"


def outcomes_refusal(log: PredictionLog, body: bytes, csv_body: bool = False) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as refused:
        items, rows = routes.outcome_items(body, csv_body)
        log.record_outcomes(items, "user-2", rows)
    return refused.value


def test_outcome_bodies_that_were_500s_are_400s(log: PredictionLog) -> None:
    pid = logged_for_outcomes(log)
    # Nested 100,000 deep: the JSON parser's RecursionError was a 500 and a traceback per request.
    assert "not JSON" in outcomes_refusal(log, b"[" * 100_000).message
    # An integer outcome past float64's range is a number out of range, not np.isfinite's TypeError (500).
    for huge in (2**64, 10**400):
        body = json.dumps({"outcomes": [{"prediction_id": pid, "outcome": huge}]}).encode()
        assert "row 1: outcome must be between 0 and 1" in outcomes_refusal(log, body).message
    assert log.realised(0) == []


def test_a_client_that_leaves_mid_body_is_no_traceback(monkeypatch: Any) -> None:
    """Starlette's ClientDisconnect from ``request.body()`` went up to uvicorn: a traceback in the log
    for every client that hung up while sending outcomes."""
    monkeypatch.setattr(routes, "running", lambda: SimpleNamespace(log=object()))
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "POST", "path": "/outcomes", "headers": [(b"content-type", b"application/json")],
             "query_string": b"", USER_KEY: "u-1"}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(routes.app(scope, receive, send))  # raised ClientDisconnect


def test_refused_outcomes_name_their_row_as_the_client_counts_it(log: PredictionLog) -> None:
    pid = logged_for_outcomes(log)
    # A long value is shown cut short: a message over the 4 KiB error bound lost its row to
    # "too many problems to list" (service/middleware/guard.py).
    for body in (
        json.dumps({"outcomes": [{"prediction_id": "x" * 100_000, "outcome": 1}]}).encode(),
        json.dumps({"outcomes": [{"prediction_id": pid, "outcome": "9" * 100_000}]}).encode(),
    ):
        message = outcomes_refusal(log, body).message
        assert message.startswith("row 1: ") and len(message) < 200, message[:300]
    body = b"prediction_id,outcome\n" + pid.encode() + b"," + b"x" * 100_000
    message = outcomes_refusal(log, body, csv_body=True).message
    assert message.startswith("row 1: ") and len(message) < 200, message[:300]
    # A CSV's rows are counted as in the file, blank lines included, by every check.
    assert outcomes_refusal(log, b"prediction_id,outcome\n\nnot-an-id,1\n", csv_body=True).extra["row"] == 2
    twice = f"prediction_id,outcome\n{pid},1\n\n{pid},1\n".encode()
    assert outcomes_refusal(log, twice, csv_body=True).message.startswith("row 3: ")
    assert log.realised(0) == []


def test_a_spreadsheets_quoted_csv_of_outcomes_is_read(log: PredictionLog) -> None:
    pid = logged_for_outcomes(log)
    items, rows = routes.outcome_items(f'"prediction_id","outcome"\r\n"{pid}","0.7"\r\n'.encode(), True)
    assert (items, rows) == ([(pid, 0.7)], [1])  # split on commas, the quotes were part of the id: refused
    assert log.record_outcomes(items, "user-2", rows) == 1
    # A cell past the csv module's field limit (128 KiB) raised csv.Error: a 500.
    huge = b"prediction_id,outcome\n\n" + b"x" * 200_000 + b",1\n"
    assert outcomes_refusal(log, huge, csv_body=True).message.startswith("row 2: field larger than field limit")


def test_the_export_refuses_what_it_cannot_do_in_one_sentence(
    log: PredictionLog, tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert log_export.main(["--out", str(tmp_path / "no" / "such" / "dir.csv")], engine=log.engine) == 2
    assert "error: cannot write" in capsys.readouterr().err  # was a FileNotFoundError traceback
    with pytest.raises(SystemExit) as bad_date:
        log_export.main(["--since", "2026-13-01", "--out", "-"], engine=log.engine)
    assert bad_date.value.code == 2 and "not a date or time" in capsys.readouterr().err
    # A mistyped ADMISSIONS_JOBS_DB created an empty database there and exported "0 predictions".
    missing = tmp_path / "typo" / "jobs.sqlite"
    monkeypatch.delenv("ADMISSIONS_JOBS_URL", raising=False)
    monkeypatch.setenv("ADMISSIONS_JOBS_DB", str(missing))
    assert log_export.main(["--out", str(tmp_path / "out.csv")]) == 2
    assert "no jobs database" in capsys.readouterr().err and not missing.parent.exists()


def test_an_export_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    """`make export-predictions OUT=- | head`: the closed pipe was a BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    store = JobStore(tmp_path / "jobs.sqlite").open()
    log = PredictionLog(store.engine, str(store.path))
    rows = np.tile(vendored_rows(), (20, 1))  # ~10,000 rows: far more than a pipe's buffer
    log.batch(rows, np.full(len(rows), 0.5), None, None, TAG, "u")
    log.flush()
    env = {**os.environ, "ADMISSIONS_JOBS_DB": str(tmp_path / "jobs.sqlite")}
    env.pop("ADMISSIONS_JOBS_URL", None)
    export = subprocess.Popen(
        [sys.executable, "-m", "service.log_export", "--out", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert export.stdout is not None and export.stderr is not None
    assert export.stdout.readline().decode().startswith(EXPORT_COLUMNS[0])
    export.stdout.close()  # the reader leaves, as head does
    errors = export.stderr.read().decode()
    assert export.wait(timeout=60) == 0, errors
    assert "Traceback" not in errors
