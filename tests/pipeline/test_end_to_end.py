"""The real pipeline, run as users run it (python -m pipeline run ...), into temporary folders."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import bentoml
import pytest

from pipeline.provenance import MANIFEST_NAME, sha256_file, sha256_tree
from tests.support.paths import RAW_DATA, ROOT
from tests.support.pipeline import PipelineRun, registered_tag, run_pipeline

pytestmark = pytest.mark.e2e

MANIFEST_KEYS = {
    "task_family",
    "task_id",
    "parameters",
    "upstream",
    "outputs",
    "code",
    "libraries",
    "started_at",
    "finished_at",
}


def task_folders(artefacts: Path) -> list[Path]:
    return sorted(p for p in artefacts.glob("*/*") if p.is_dir())


def test_the_run_prints_luigis_summary_and_succeeds(pipeline_run: PipelineRun) -> None:
    assert "Luigi Execution Summary" in pipeline_run.result.stderr
    assert "13 ran successfully" in pipeline_run.result.stderr
    assert "- 4 TrainModel" in pipeline_run.result.stderr  # no family hidden behind "..."
    assert "Traceback" not in pipeline_run.result.stderr


def test_the_run_ends_with_a_summary_a_person_reads(pipeline_run: PipelineRun) -> None:
    summary = pipeline_run.result.stderr.split("Pipeline summary\n")[1]
    lines = dict(line.strip().split(":", 1) for line in summary.strip().splitlines())
    expected = "PrepareData, TrainModel x4, EvaluateModel x4, SelectModel, CalibrateIntervals, ExplainModel, "
    expected += "RegisterModel"
    assert lines["ran"].strip() == expected
    assert lines["reused"].strip() == "nothing"
    assert (
        lines["data"].strip()
        == "500 of 500 rows valid (320 train, 80 test, 100 kept out as the gate's reference applicants)"
    )
    assert lines["selected"].strip().startswith(bentoml.models.get(pipeline_run.model_tag).info.labels["candidate"])
    assert "CV RMSE" in lines["selected"] and "held-out RMSE" in lines["selected"]
    assert Path(lines["report"].strip()).is_file()
    assert lines["model"].strip() == pipeline_run.model_tag


def test_log_lines_are_short(pipeline_run: PipelineRun) -> None:
    longest = max(pipeline_run.result.stderr.splitlines(), key=len)
    assert len(longest) <= 200, longest  # Luigi's own were 400-600 characters of parameters


def test_every_output_carries_a_manifest_that_matches_it(pipeline_run: PipelineRun) -> None:
    folders = task_folders(pipeline_run.artefacts)
    families = {folder.parent.name for folder in folders}  # other tests may add BuildBento to this run
    assert {"EvaluateModel", "PrepareData", "RegisterModel", "SelectModel", "TrainModel"} <= families
    for folder in folders:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        assert manifest.keys() >= MANIFEST_KEYS, folder
        assert manifest["task_id"] == folder.name
        assert manifest["parameters"]["data_sha256"] == sha256_file(RAW_DATA)
        for name, digest in manifest["outputs"].items():
            assert sha256_file(folder / name) == digest
        for record in manifest["upstream"]:  # a folder's hash, or a store item's tag (RegisterModel)
            if "tag" in record:
                assert record["tag"].startswith("admissions:")
            else:
                assert sha256_tree(Path(record["output"])) == record["sha256"]
        assert manifest["libraries"]["scikit-learn"] != "not installed"
        assert manifest["started_at"] <= manifest["finished_at"]


def test_the_registered_model_traces_back_to_the_raw_file(pipeline_run: PipelineRun) -> None:
    model = bentoml.models.get(pipeline_run.model_tag)
    assert model.info.labels["data_sha256"] == sha256_file(RAW_DATA)[:12]
    assert model.info.labels["candidate"] == model.info.metadata["candidate"]
    lineage_file = Path(model.path) / model.info.metadata["manifest"]["lineage_file"]
    chain = json.loads(lineage_file.read_text())["lineage"]
    assert chain[0]["task_family"] == "SelectModel"
    assert sum(m["task_family"] == "TrainModel" for m in chain) == 4
    prepare = next(m for m in chain if m["task_family"] == "PrepareData")
    assert prepare["rows"] == {
        "raw": 500, "valid": 500, "rejected": 0, "train": 320, "test": 80, "held_for_reference": 100, "reference": 100
    }  # fmt: skip
    assert model.info.metadata["manifest"]["code"]["version"] == model.info.labels["code_version"]


def test_model_metadata_stays_readable(pipeline_run: PipelineRun) -> None:
    bentoml_cli = str(Path(sys.executable).parent / "bentoml")
    env = {**os.environ, "BENTOML_HOME": str(pipeline_run.bentoml_home)}
    shown = subprocess.run(
        [bentoml_cli, "models", "get", pipeline_run.model_tag], env=env, capture_output=True, text=True, check=True
    ).stdout
    # The inlined lineage made it 655 lines. ~45 are the numbers the service computes intervals from
    # (intervals.adaptive: one factor per rating and level, the scale weights), ~120 the rest.
    assert len(shown.splitlines()) <= 170
    metadata = bentoml.models.get(pipeline_run.model_tag).info.metadata
    for key in ("candidate", "selection_reason", "metrics", "hyperparameters", "manifest"):  # what GET /model shows
        assert metadata[key], key
    assert "finished_at" not in metadata["manifest"]  # stored before it finished: no made-up time


def test_lineage_command_prints_the_chain(pipeline_run: PipelineRun) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "lineage", pipeline_run.model_tag],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sha256_file(RAW_DATA) in done.stdout
    for family in ("RegisterModel", "SelectModel", "EvaluateModel", "TrainModel", "PrepareData"):
        assert family in done.stdout
    assert "candidate = random_forest" in done.stdout


def test_lineage_of_an_unknown_model_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "lineage", "admissions:doesnotexist"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no model 'admissions:doesnotexist'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_rerun_with_nothing_changed_does_nothing(pipeline_run: PipelineRun) -> None:
    before = task_folders(pipeline_run.artefacts)
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 complete ones were encountered" in result.stderr
    assert "ran successfully" not in result.stderr
    assert "  ran:      nothing\n" in result.stderr
    assert task_folders(pipeline_run.artefacts) == before
    assert registered_tag(pipeline_run.bentoml_home) == pipeline_run.model_tag


def test_a_model_deleted_from_the_store_is_registered_again(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    home = tmp_path / "bentoml"  # a store of its own: the session's model stays for other tests
    first = run_pipeline(pipeline_run.artefacts, home)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "1 ran successfully" in first.stderr  # only RegisterModel: everything upstream was done
    tag = registered_tag(home)
    bentoml_cli = str(Path(sys.executable).parent / "bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home)}
    subprocess.run([bentoml_cli, "models", "delete", "--yes", tag], env=env, check=True, capture_output=True)
    again = run_pipeline(pipeline_run.artefacts, home)
    assert again.returncode == 0
    assert "1 ran successfully" in again.stderr
    assert registered_tag(home) == tag


def test_make_clean_then_a_run_restores_every_file_without_storing_twice(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    # The session's store holds the model and (after this first run) the Bento; a fresh artefacts
    # folder is what `make clean` leaves, and a run killed just after storing leaves no manifest either.
    first = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="BuildBento")
    assert first.returncode == 0, first.stderr[-3000:]
    models, bentos = store_contents(pipeline_run.bentoml_home)
    again = run_pipeline(tmp_path / "artefacts", pipeline_run.bentoml_home, task="BuildBento")
    assert again.returncode == 0, again.stderr[-3000:]
    assert store_contents(pipeline_run.bentoml_home) == (models, bentos)  # nothing stored twice
    assert "  reused:   RegisterModel, BuildBento\n" in again.stderr
    restored = tmp_path / "artefacts"
    families = {folder.parent.name for folder in task_folders(restored) if (folder / MANIFEST_NAME).is_file()}
    assert families == {"PrepareData", "TrainModel", "EvaluateModel", "SelectModel", "RegisterModel", "BuildBento"} | {
        "CalibrateIntervals", "ExplainModel", "ReportRun", "PromoteModel"
    }  # fmt: skip
    for pattern in ("SelectModel/*/report.md", "SelectModel/*/comparison.png", "EvaluateModel/*/test_predictions.png"):
        assert list(restored.glob(pattern)), pattern
    manifest = json.loads(next(restored.glob(f"BuildBento/*/{MANIFEST_NAME}")).read_text())
    assert manifest["already_in_store"] is True
    assert manifest["tag"] in bentos
    assert manifest["model_tag"] == pipeline_run.model_tag  # what the reused Bento carries


def test_a_run_killed_before_the_lineage_file_was_written_completes_it(
    pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    artefacts, home = tmp_path / "artefacts", tmp_path / "bentoml"  # copies: the session's stay intact
    shutil.copytree(pipeline_run.artefacts, artefacts)
    shutil.copytree(pipeline_run.bentoml_home, home)
    shutil.rmtree(artefacts / "RegisterModel")
    name, version = pipeline_run.model_tag.split(":")
    lineage_file = home / "models" / name / version / "lineage.json"
    lineage_file.unlink()
    models, _ = store_contents(home)
    result = run_pipeline(artefacts, home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert store_contents(home)[0] == models
    assert json.loads(lineage_file.read_text())["lineage"][0]["task_family"] == "SelectModel"
    assert list(artefacts.glob(f"RegisterModel/*/{MANIFEST_NAME}"))


def store_contents(home: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Model and Bento tags with their creation times (a second copy would add or replace one)."""
    code = (
        "import bentoml, json; print(json.dumps(["
        "{str(m.tag): str(m.info.creation_time) for m in bentoml.models.list()},"
        "{str(b.tag): str(b.info.creation_time) for b in bentoml.list()}]))"
    )
    env = {**os.environ, "BENTOML_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    models, bentos = json.loads(done.stdout)
    return models, bentos


def test_lineage_of_a_bento_names_its_model_and_the_raw_file(pipeline_run: PipelineRun) -> None:
    result = run_pipeline(pipeline_run.artefacts, pipeline_run.bentoml_home, task="BuildBento")
    assert result.returncode == 0, result.stderr[-3000:]
    bento_tag = result.stderr.split("  Bento:    ")[1].split()[0]
    env = {**os.environ, "BENTOML_HOME": str(pipeline_run.bentoml_home)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "lineage", bento_tag],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Bento {bento_tag} ")
    assert f"model {pipeline_run.model_tag} " in done.stdout
    assert sha256_file(RAW_DATA) in done.stdout


def test_two_clean_runs_give_identical_data_metrics_and_predictions(pipeline_run: PipelineRun, tmp_path: Path) -> None:
    result = run_pipeline(tmp_path / "artefacts", tmp_path / "bentoml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert registered_tag(tmp_path / "bentoml") == pipeline_run.model_tag
    for family, files in {
        "PrepareData": ("train.csv", "test.csv", "rejects.csv"),
        "TrainModel": (),
        "EvaluateModel": ("metrics.json", "test_predictions.csv"),
        "SelectModel": ("selection.json",),
    }.items():
        first = sorted((pipeline_run.artefacts / family).iterdir())
        second = sorted((tmp_path / "artefacts" / family).iterdir())
        assert [p.name for p in first] == [p.name for p in second]
        for a, b in zip(first, second, strict=True):
            for name in files:
                assert sha256_file(a / name) == sha256_file(b / name), f"{family}/{name}"


def test_a_killed_run_leaves_no_half_written_target(tmp_path: Path) -> None:
    artefacts = tmp_path / "artefacts"
    # Two quick candidates: the test is about atomic outputs; the forest and booster add time, not coverage.
    quick = ("--candidates", '["linear_regression", "ridge"]')
    command = [sys.executable, "-m", "pipeline", "run", "SelectModel", "--artefacts-dir", str(artefacts),
               "--local-scheduler", "--workers", "1", "--cv-repeats", "1", *quick]  # fmt: skip
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "b")}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, **quiet)
    deadline = time.monotonic() + 120
    while not list(artefacts.glob("*/*-luigi-tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # mid-task: a temporary folder exists
    process.wait()
    for folder in task_folders(artefacts):
        assert "-luigi-tmp-" in folder.name or (folder / MANIFEST_NAME).is_file(), folder
    result = run_pipeline(artefacts, tmp_path / "b", *quick, task="SelectModel")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all((folder / MANIFEST_NAME).is_file() for folder in task_folders(artefacts))
    assert not list(artefacts.glob("*/*-luigi-tmp-*"))  # the killed run's temporary folders are gone


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\x00\x01\x02\xff\xfe binary", "is not a UTF-8 CSV file"),
        (b"GRE Score,TOEFL Score\r\n337,118\r\n", "lacks column(s)"),
        (RAW_DATA.read_bytes().replace(b",1,0.9", b",1,9.9"), "break the feature contract"),
        (RAW_DATA.read_bytes().splitlines(keepends=True)[0], "has a header but no rows"),
        (
            b"".join(  # an extra column that also reads as gre_score: which one would be trained on?
                line.rstrip(b"\r\n") + (b",gre_score\r\n" if n == 0 else b",-4999\r\n")
                for n, line in enumerate(RAW_DATA.read_bytes().splitlines(keepends=True))
            ),
            "column 2 ('GRE Score') and column 10 ('gre_score') both read as 'gre_score'",
        ),
    ],
)
def test_bad_raw_data_fails_with_a_clear_message(tmp_path: Path, content: bytes | None, message: str) -> None:
    raw = tmp_path / "raw.csv"
    if content is not None:
        raw.write_bytes(content)
    result = run_pipeline(tmp_path / "artefacts", tmp_path / "bentoml", raw_data=raw)
    assert result.returncode == 30  # luigi.cfg [retcode] task_failed
    assert message in result.stderr
    assert "DataError" in result.stderr
    assert "  failed:   PrepareData (the error is above)\n" in result.stderr  # the run's summary
    blocked = "  blocked:  TrainModel x4, EvaluateModel x4, SelectModel, CalibrateIntervals, ExplainModel, "
    blocked += "RegisterModel"
    assert blocked in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "artefacts").glob("*/*-luigi-tmp-*"))  # nothing half-written left behind


def test_a_trailing_summary_row_is_rejected_not_fatal(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_bytes(RAW_DATA.read_bytes() + b",316.472,,,,,,,\r\n")
    result = run_pipeline(tmp_path / "artefacts", tmp_path / "bentoml", raw_data=raw, task="PrepareData")
    assert result.returncode == 0, result.stderr[-3000:]
    rejects = next((tmp_path / "artefacts" / "PrepareData").glob("*/rejects.csv")).read_text()
    assert "502," in rejects
    assert "missing value" in rejects
    assert "1 of 501 rows of" in result.stderr  # within the threshold, but warned about
    assert "1 rejected, reasons in" in result.stderr
