"""How the served models do: drift of recent inputs, realised error and coverage, and a retrain signal.

Every ``REFRESH_S`` seconds each API worker reads the prediction log (service/predlog.py) and computes:

- **drift**, per model and feature: the PSI (core/profile.py) of the inputs of the model's newest
  ``drift_window`` predictions of the last ``DRIFT_WINDOW_S`` against the training profile stored with
  the model (``training_profile.json``). Judged only with at least ``MIN_DRIFT_ROWS`` rows; above
  ``PSI_DRIFT`` (0.25, "a large shift" in the usual reading, as the promotion gate) a feature drifts.
- **realised accuracy**, per model and window (``WINDOWS``, by when the prediction was made): the
  number of outcomes, RMSE, and coverage per interval level. Fewer than ``MIN_OUTCOMES`` outcomes: the
  figures are shown with a warning and judge nothing.
- **retrain recommended**, per model: a feature drifts, or the realised RMSE (7 days) is above
  ``RMSE_MARGIN`` x the model's recorded CV RMSE, or realised coverage (7 days) is below nominal by more
  than ``COVERAGE_SLACK``. It is a signal for people (``/metrics``, ``GET /model``, ``GET /monitoring``,
  the alert rules in deploy/prometheus/): nothing is promoted or retrained by it; the promotion gate
  stays in charge of what is served.

All figures are exported on ``/metrics``; every worker computes the same numbers from the same
database, so each gauge shows the newest value any worker set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import bentoml

from core.artefact import METRICS_KEY, PROFILE_FILE
from core.contract import FEATURE_NAMES
from core.profile import psi
from service.errors import JobStoreUnavailableError
from service.jobs import JobStore
from service.predlog import PredictionLog

logger = logging.getLogger("admissions.monitoring")
REFRESH_S = 15.0
DRIFT_WINDOW_S = 24 * 3600.0
MIN_DRIFT_ROWS = 200
PSI_DRIFT = 0.25
WINDOWS = {"1d": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0}
JUDGED_WINDOW = "7d"
MIN_OUTCOMES = 30
RMSE_MARGIN = 1.5
COVERAGE_SLACK = 0.05

# Every worker computes the same figures from the same database: the newest value any worker set is the
# figure. ("min" or "max" would also count the 0 of processes that import this module and never set it;
# the "live" modes lost every figure for up to a refresh when BentoML marked a process dead.)
_NEWEST: Literal["mostrecent"] = "mostrecent"


def _gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
    return bentoml.metrics.Gauge(
        name=name, documentation=documentation, labelnames=list(labels), multiprocess_mode=_NEWEST
    )


DRIFT = _gauge(
    name="admissions_drift_psi",
    documentation=f"PSI of recent inputs against the model's training profile, per feature (> {PSI_DRIFT}: drift)",
    labels=("model_tag", "feature"),
)
DRIFT_ROWS = _gauge(
    name="admissions_drift_window_rows",
    documentation="predictions in the drift window (drift is judged from MIN_DRIFT_ROWS on)",
    labels=("model_tag",),
)
REALISED_RMSE = _gauge(
    name="admissions_realised_rmse",
    documentation="RMSE of the predictions with a recorded outcome, by when they were made",
    labels=("model_tag", "window"),
)
REALISED_COVERAGE = _gauge(
    name="admissions_realised_coverage",
    documentation="share of recorded outcomes inside their prediction interval, per interval level",
    labels=("model_tag", "window", "level"),
)
OUTCOMES = _gauge(
    name="admissions_realised_outcomes",
    documentation="recorded outcomes behind the realised figures",
    labels=("model_tag", "window"),
)
CV_RMSE = _gauge(
    name="admissions_model_cv_rmse",
    documentation="the model's cross-validated RMSE, as recorded by the pipeline",
    labels=("model_tag",),
)
JOBS_WAITING = _gauge(name="admissions_jobs_waiting", documentation="jobs pending (accepted, not yet running)")
JOB_AGE = _gauge(
    name="admissions_oldest_waiting_job_age_seconds",
    documentation="how long the oldest pending job has waited (0 when none waits)",
)
JOBS_DATABASE_UP = _gauge(
    name="admissions_jobs_database_up",
    documentation="1 when the jobs database (and the prediction log in it) answers a write, else 0",
)
RETRAIN = _gauge(
    name="admissions_retrain_recommended",
    documentation="1 when drift or realised error crosses its threshold (GET /monitoring says why)",
    labels=("model_tag",),
)


class Monitor:
    """The figures above for the models seen in the log (and the served one), refreshed on demand."""

    def __init__(
        self, log: PredictionLog, jobs: JobStore, served_tag: Callable[[], str | None], drift_window: int
    ) -> None:
        self.log = log
        self.jobs = jobs
        self.served_tag = served_tag
        self.drift_window = drift_window
        self.snapshot: dict[str, Any] = {"models": {}, "at": None}
        self._profiles: dict[str, tuple[dict[str, Any] | None, float | None]] = {}

    def refresh(self, now: float | None = None) -> dict[str, Any]:
        """Compute every figure, export it, and keep it for ``GET /monitoring`` (runs in a thread)."""
        now = time.time() if now is None else now
        tags = set(self.log.models_since(now - DRIFT_WINDOW_S))
        realised = {name: {e["model_tag"]: e for e in self.log.realised(now - span)} for name, span in WINDOWS.items()}
        for per_model in realised.values():
            tags.update(per_model)
        served = self.served_tag()
        if served:
            tags.add(served)
        models = {tag: self._model(tag, now, {w: realised[w].get(tag) for w in WINDOWS}) for tag in sorted(tags)}
        self.snapshot = {"at": now, "models": models, "thresholds": thresholds()}
        return self.snapshot

    def refresh_jobs(self, now: float | None = None) -> None:
        """The job backlog, the oldest waiting job's age, and whether the jobs database answers."""
        now = time.time() if now is None else now
        try:
            self.jobs.check()
            waiting, oldest = self.jobs.backlog()
        except JobStoreUnavailableError:
            JOBS_DATABASE_UP.set(0)
            return
        JOBS_DATABASE_UP.set(1)
        JOBS_WAITING.set(waiting)
        JOB_AGE.set(0 if oldest is None else now - oldest)

    def _model(self, tag: str, now: float, realised: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
        profile, cv_rmse = self._reference(tag)
        drift = self._drift(tag, now, profile)
        reasons = [
            f"{name}: PSI {value:.2f} > {PSI_DRIFT}" for name, value in drift["psi"].items() if value > PSI_DRIFT
        ]
        windows = {}
        for window, entry in realised.items():
            count = entry["outcomes"] if entry else 0
            OUTCOMES.labels(model_tag=tag, window=window).set(count)
            shown: dict[str, Any] = {"outcomes": count}
            if entry:
                shown.update(rmse=entry["rmse"], coverage=entry["coverage"])
                REALISED_RMSE.labels(model_tag=tag, window=window).set(entry["rmse"])
                for level, figure in entry["coverage"].items():
                    REALISED_COVERAGE.labels(model_tag=tag, window=window, level=level).set(figure["coverage"])
            if count < MIN_OUTCOMES:
                shown["warning"] = f"{count} outcomes: too few to judge (at least {MIN_OUTCOMES})"
            windows[window] = shown
        judged = realised[JUDGED_WINDOW]
        if judged and judged["outcomes"] >= MIN_OUTCOMES:
            if cv_rmse is not None and judged["rmse"] > RMSE_MARGIN * cv_rmse:
                reasons.append(
                    f"realised RMSE {judged['rmse']:.4f} ({JUDGED_WINDOW}, {judged['outcomes']} outcomes) > "
                    f"{RMSE_MARGIN} x CV RMSE {cv_rmse:.4f}"
                )
            for level, figure in judged["coverage"].items():
                if figure["outcomes"] >= MIN_OUTCOMES and figure["coverage"] < float(level) - COVERAGE_SLACK:
                    reasons.append(
                        f"realised coverage {figure['coverage']:.1%} at {level} ({JUDGED_WINDOW}, "
                        f"{figure['outcomes']} outcomes) < nominal - {COVERAGE_SLACK:.0%}"
                    )
        if cv_rmse is not None:
            CV_RMSE.labels(model_tag=tag).set(cv_rmse)
        RETRAIN.labels(model_tag=tag).set(1 if reasons else 0)
        return {
            "drift": drift,
            "realised": windows,
            "cv_rmse": cv_rmse,
            "retrain_recommended": bool(reasons),
            "reasons": reasons,
        }

    def _drift(self, tag: str, now: float, profile: dict[str, Any] | None) -> dict[str, Any]:
        rows = self.log.recent_features(tag, self.drift_window, now - DRIFT_WINDOW_S)
        DRIFT_ROWS.labels(model_tag=tag).set(len(rows))
        result: dict[str, Any] = {"rows": len(rows), "psi": {}}
        if profile is None:
            result["note"] = "no training profile is stored with this model: drift is not measured"
        elif len(rows) < MIN_DRIFT_ROWS:
            result["note"] = f"{len(rows)} predictions in the window: too few to judge (at least {MIN_DRIFT_ROWS})"
        else:
            for column, name in enumerate(FEATURE_NAMES):
                if name in profile:
                    value = psi(profile[name], rows[:, column])
                    result["psi"][name] = value
                    DRIFT.labels(model_tag=tag, feature=name).set(value)
        return result

    def _reference(self, tag: str) -> tuple[dict[str, Any] | None, float | None]:
        """The model's training profile and CV RMSE, from the model store (read once per model)."""
        if tag not in self._profiles:
            self._profiles[tag] = _read_reference(tag)
        return self._profiles[tag]


def _read_reference(tag: str) -> tuple[dict[str, Any] | None, float | None]:
    try:
        model = bentoml.models.get(tag)
    except Exception:  # not in this store (e.g. served by another image): no drift or CV figure for it
        logger.warning("monitoring: model %s is not in this model store: no drift or CV RMSE for it", tag)
        return None, None
    profile = None
    try:
        profile = json.loads((Path(model.path) / PROFILE_FILE).read_text())
    except (OSError, ValueError):
        logger.warning("monitoring: model %s has no readable %s: drift is not measured", tag, PROFILE_FILE)
    try:
        metadata: Any = model.info.metadata
        cv_rmse = float(metadata[METRICS_KEY]["cv"]["rmse"]["mean"])
    except (KeyError, TypeError, ValueError):
        cv_rmse = None
    return profile, cv_rmse


def thresholds() -> dict[str, Any]:
    return {
        "psi_drift": PSI_DRIFT,
        "min_drift_rows": MIN_DRIFT_ROWS,
        "drift_window_s": DRIFT_WINDOW_S,
        "min_outcomes": MIN_OUTCOMES,
        "rmse_margin": RMSE_MARGIN,
        "coverage_slack": COVERAGE_SLACK,
        "judged_window": JUDGED_WINDOW,
    }


RETENTION_EVERY_S = 3600.0


async def watch(monitor: Monitor, log: PredictionLog, retention_s: float) -> None:
    """Refresh the figures every ``REFRESH_S`` and remove predictions older than ``retention_s`` every
    hour, until cancelled; a failing database is logged and tried again next time."""
    swept = 0.0
    while True:
        try:
            await asyncio.to_thread(monitor.refresh_jobs)
            await asyncio.to_thread(monitor.refresh)
            if time.monotonic() - swept > RETENTION_EVERY_S:
                removed = await asyncio.to_thread(log.remove_older_than, time.time() - retention_s)
                swept = time.monotonic()
                if removed:
                    logger.info(
                        "prediction log: removed %d requests older than %.0f days", removed, retention_s / 86_400
                    )
        except Exception:
            logger.exception("monitoring: cannot read the prediction log; trying again in %.0f s", REFRESH_S)
        await asyncio.sleep(REFRESH_S)
