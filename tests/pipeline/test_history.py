"""``python -m pipeline runs`` on stores that hold no run, and the table's columns (no pipeline run needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.cli import history
from tests.support.paths import ROOT


def pipeline_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    command = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_runs_on_an_empty_store_is_one_line_naming_the_store(tmp_path: Path) -> None:
    result = pipeline_cli(tmp_path, "runs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and result.stderr == ""
    assert result.stdout.strip() == (
        f"no registered admissions models in BENTOML_HOME {tmp_path}; `make register` makes one "
        "(or set BENTOML_HOME to the store that has them)"
    )


def test_runs_on_a_store_of_other_models_is_the_same_line(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    save = "import bentoml; bentoml.picklable_model.save_model('another_project', [1, 2])"
    subprocess.run([sys.executable, "-c", save], env=env, check=True, capture_output=True, timeout=120)
    result = pipeline_cli(tmp_path, "runs")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.startswith("no registered admissions models in BENTOML_HOME")
    assert len(result.stdout.strip().splitlines()) == 1


def fake_model(version: str, data_sha256: str, seed: int) -> Any:
    metadata = {
        "candidate": "ridge",
        "manifest": {"parameters": {"data_sha256": data_sha256, "seed": seed, "raw_data": "x.csv"}},
        "metrics": {"cv": {"rmse": {"mean": 0.06}}, "test": {"rmse": 0.061}},
    }
    info = SimpleNamespace(metadata=metadata, creation_time=datetime(2026, 1, int(version[-1]), tzinfo=UTC))
    return SimpleNamespace(tag=f"admissions:{version}", info=info)


def test_runs_shows_the_data_hash_once_even_when_runs_differ_in_data(monkeypatch: pytest.MonkeyPatch) -> None:
    models = [fake_model("v1", "a" * 64, 1), fake_model("v2", "b" * 64, 2)]
    monkeypatch.setattr(history, "registered", lambda name: models)
    lines = history.runs_table().splitlines()
    assert lines[0].split("  ")[0] == "time (UTC)"
    assert lines[0].count("data") == 1 and "seed" in lines[0]  # seed varies too: its own column
    assert lines[1].count("b" * 12) == 1 and lines[2].count("a" * 12) == 1
