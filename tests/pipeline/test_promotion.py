"""The promotion gate and the aliases end to end, with real pipeline runs in stores of their own.

A careless export (shuffled, half-shuffled, inverted, rescaled or slipped labels) is refused even as the
first model of a store; against a champion, a filtered export and half-shuffled labels are refused with
the check that caught them; a model that is sound but not better becomes challenger. Then the way
back: a forced model, a no-op re-run that says truthfully who is champion, FORCE_PROMOTE on a model
already registered, rollback and promote by hand, and a wiped store with old artefacts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pipeline.corruptions import corrupted
from tests.support.paths import ROOT
from tests.support.pipeline import run_pipeline

pytestmark = pytest.mark.e2e
QUICK = ("--candidates", '["linear_regression", "ridge"]')  # the forest and booster add time, not coverage
WORSE = ("--candidates", '["ridge"]', "--test-size", "0.8")  # sound, but trained on a fifth of the rows


def python(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env.pop("ADMISSIONS_MODEL_TAG", None)
    command = [sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def aliases(home: Path) -> dict:
    return json.loads((home / "aliases" / "admissions.json").read_text())


def tag_in(output: str) -> str:
    return re.search(r"model:\s+(admissions:\w+)", output).group(1)  # type: ignore[union-attr]


def refusal(output: str) -> str:
    return next(line for line in output.splitlines() if "was not promoted" in line)


@pytest.mark.parametrize(
    ("corruption", "caught_by"),
    [
        ("shuffled", "own CV: R^2 -"),
        ("half_shuffled", "own CV: R^2 0."),
        ("complement", "reference set: R^2 -"),
        ("percent_twice", "reference set: R^2 -"),
        ("off_by_one", "own CV: R^2 0."),
    ],
)
def test_a_careless_export_is_refused_even_as_the_first_model(corruption: str, caught_by: str, tmp_path: Path) -> None:
    home, artefacts = tmp_path / "home", tmp_path / "artefacts"
    result = run_pipeline(artefacts, home, *QUICK, task="BuildBento", raw_data=corrupted(corruption, tmp_path))
    assert result.returncode == 30, result.stderr[-3000:]
    sentence = refusal(result.stderr)
    tag = tag_in(result.stderr)
    assert f"{tag} was not promoted (it stays in the store; nothing is served from it)" in sentence
    assert caught_by in sentence and "FORCE_PROMOTE=" in sentence
    assert "Traceback" not in result.stderr
    assert "gate:     refused" in result.stderr and "champion: none yet" in result.stderr
    record = aliases(home)
    assert record["aliases"] == {} and record["decisions"][tag]["verdict"] == "refused"
    card = next((home / "models" / "admissions").glob("*/model_card.md")).read_text()
    assert "## The promotion gate" in card and "**failed**" in card and caught_by in card
    report = next((artefacts / "ReportRun").glob("*/report.html")).read_text()
    assert "Promotion gate" in report and "<td>NO</td>" in report


@dataclass
class Store:
    home: Path
    artefacts: Path
    good: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    home, artefacts = tmp_path_factory.mktemp("gate-home"), tmp_path_factory.mktemp("gate") / "artefacts"
    good = run_pipeline(artefacts, home, *QUICK, task="BuildBento")
    assert good.returncode == 0, good.stderr[-3000:]
    return Store(home, artefacts, good)


def test_the_first_sound_model_becomes_champion(store: Store) -> None:
    tag = tag_in(store.good.stderr)
    assert aliases(store.home)["aliases"] == {"champion": tag}
    assert "gate:     champion: the first model of this store, passed the gate" in store.good.stderr
    assert f"champion: {tag} (this run's model); served by `make serve`" in store.good.stderr
    # what `make serve` (bentoml serve service.api:AdmissionsAPI) loads when no tag is given
    served = python(store.home, "-c", "from service.models import MODEL_TAG; print(MODEL_TAG)")
    assert served.stdout.strip().splitlines()[-1] == tag, served.stderr[-2000:]


@pytest.mark.parametrize(
    ("corruption", "caught_by"),
    [
        ("top_half", r"data: the training data differ from the champion's in chance_of_admit \(PSI \d"),
        ("half_shuffled", r"labels: the champion admissions:\w+ predicts the new labels with RMSE 0\.\d+, \d\.\d\d x"),
    ],
)
def test_data_that_disagree_with_the_champions_are_refused(
    store: Store, corruption: str, caught_by: str, tmp_path: Path
) -> None:
    champion = tag_in(store.good.stderr)
    result = run_pipeline(
        store.artefacts, store.home, *QUICK, task="BuildBento", raw_data=corrupted(corruption, tmp_path)
    )
    assert result.returncode == 30, result.stderr[-3000:]
    assert re.search(caught_by, refusal(result.stderr)), refusal(result.stderr)
    assert f"{champion} stays champion" in refusal(result.stderr)
    assert aliases(store.home)["aliases"]["champion"] == champion


def test_a_sound_model_that_does_not_beat_the_champion_becomes_challenger(store: Store) -> None:
    champion = tag_in(store.good.stderr)
    worse = run_pipeline(store.artefacts, store.home, *WORSE, task="BuildBento")
    assert worse.returncode == 30, worse.stderr[-3000:]
    tag = tag_in(worse.stderr)
    sentence = refusal(worse.stderr)
    assert f"{tag} was not promoted (it stays in the store, as challenger; {champion} stays champion)" in sentence
    assert re.search(
        rf"reference RMSE 0\.\d{{4}} vs the champion {champion}'s 0\.\d{{4}}: worse by 0\.\d{{4}}", sentence
    )
    assert aliases(store.home)["aliases"] == {"champion": champion, "challenger": tag}
    listing = python(store.home, "-m", "pipeline", "aliases")
    assert listing.returncode == 0 and re.search(rf"challenger\s+{tag}", listing.stdout)
    diff = python(store.home, "-m", "pipeline", "diff", champion, tag.split(":")[1])
    assert diff.returncode == 0, diff.stderr
    assert re.search(r"param test_size\s+0\.2\s+0\.8", diff.stdout)


def test_the_way_back_forced_no_op_rerun_force_again_rollback(store: Store, tmp_path: Path) -> None:
    good = tag_in(store.good.stderr)
    shuffled = corrupted("shuffled", tmp_path)
    forced = run_pipeline(
        store.artefacts, store.home, *QUICK, "--force-promote", "testing the way back", task="BuildBento",
        raw_data=shuffled,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr[-3000:]
    garbage = tag_in(forced.stderr)
    assert aliases(store.home)["aliases"]["champion"] == garbage
    assert aliases(store.home)["moves"][-1]["reason"] == "testing the way back"

    # The good run again: nothing to do, the champion stays, and the summary says which it is.
    again = run_pipeline(store.artefacts, store.home, *QUICK, task="BuildBento")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ran:      nothing" in again.stderr
    assert f"champion: {garbage}; served by `make serve`" in again.stderr
    assert aliases(store.home)["aliases"]["champion"] == garbage

    # `make clean` (artefacts gone) and the same run: everything is redone but the verdict, which the
    # store keeps; the champion does not move.
    cleaned = tmp_path / "cleaned-artefacts"
    redone = run_pipeline(cleaned, store.home, *QUICK, task="BuildBento")
    assert redone.returncode == 0, redone.stderr[-3000:]
    assert f"model:    {good}" in redone.stderr and f"champion: {garbage}; served" in redone.stderr
    assert aliases(store.home)["aliases"]["champion"] == garbage

    # FORCE_PROMOTE on the registered good model promotes it, through a verdict of this run.
    back = run_pipeline(store.artefacts, store.home, *QUICK, "--force-promote", "good data again", task="BuildBento")
    assert back.returncode == 0, back.stderr[-3000:]
    assert "ran:      PromoteModel, ReportRun" in back.stderr
    assert f"champion: {good} (this run's model)" in back.stderr
    last = aliases(store.home)["moves"][-1]
    assert last["kind"] == "gate" and "good data again" in last["reason"]  # it passes on its own; the ask is kept

    # Rollback returns to the garbage model (the one it replaced); a second goes further back.
    rolled = python(store.home, "-m", "pipeline", "rollback", "--reason", "checking rollback")
    assert rolled.returncode == 0 and f"champion: {garbage} (was {good})" in rolled.stdout, rolled.stderr
    move = aliases(store.home)["moves"][-1]
    assert (move["kind"], move["reason"], move["previous"]) == ("rollback", "checking rollback", good)
    assert "python -m pipeline rollback" in move["by"]
    promoted = python(store.home, "-m", "pipeline", "promote", good.split(":")[1], "--reason", "by hand")
    assert promoted.returncode == 0 and f"champion: {good} (was {garbage})" in promoted.stdout
    listing = python(store.home, "-m", "pipeline", "aliases").stdout
    assert listing.index("promote by python -m pipeline promote") < listing.index("rollback by")  # newest first


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("promote", "nosuchversion", "--reason", "x"), "no registered model admissions:nosuchversion in the store"),
        (("promote", "a:b:c", "--reason", "x"), "'a:b:c' is not a valid model tag"),
        (("rollback", "--to", "admissions:nope", "--reason", "x"), "no registered model admissions:nope"),
        (("promote", "admissions:x", "--reason", " "), "a reason is required"),
    ],
)
def test_alias_commands_refuse_with_one_sentence(store: Store, args: tuple[str, ...], says: str) -> None:
    before = aliases(store.home)
    result = python(store.home, "-m", "pipeline", *args)
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert aliases(store.home) == before


def test_a_wiped_store_with_old_artefacts_registers_promotes_and_builds_again(store: Store, tmp_path: Path) -> None:
    fresh = tmp_path / "new-home"
    result = run_pipeline(store.artefacts, fresh, *QUICK, task="BuildBento")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert re.search(r"ran:\s+RegisterModel, PromoteModel, ReportRun, BuildBento", result.stderr), result.stderr[-2000:]
    tag = tag_in(result.stderr)
    assert aliases(fresh)["aliases"] == {"champion": tag}
    assert list((fresh / "bentos" / "admissions_api").glob("*/bento.yaml"))


def test_runs_marks_the_champion(store: Store) -> None:
    runs = python(store.home, "-m", "pipeline", "runs")
    assert runs.returncode == 0, runs.stderr
    record = aliases(store.home)
    listed = [line for line in runs.stdout.splitlines() if "admissions:" in line]
    assert {re.search(r"admissions:\w+", line).group(0) for line in listed} == set(record["decisions"])  # type: ignore[union-attr]
    assert [line for line in listed if " yes " in line] == [
        line for line in listed if record["aliases"]["champion"] in line
    ]


def test_a_rollback_round_trip_with_a_real_server(store: Store, tmp_path: Path) -> None:
    """A running service keeps its model and says when the champion moved; a restart serves the new one."""
    from types import SimpleNamespace

    import requests

    from tests.support.service import Server, Service, service_env

    def get(server: Server, path: str) -> requests.Response:
        headers = Service(server.url, env, "", server).headers()
        return requests.get(f"{server.url}{path}", headers=headers, timeout=30)

    before = aliases(store.home)["aliases"]["champion"]
    other = next(tag for tag in aliases(store.home)["decisions"] if tag != before)
    env = service_env(SimpleNamespace(bentoml_home=store.home), tmp_path)  # type: ignore[arg-type]
    server = Server(env, tmp_path / "serve.log").start()
    try:
        state = get(server, "/model").json()
        assert state["model_tag"] == before and state["promotion"]["aliases"] == ["champion"]
        moved = python(store.home, "-m", "pipeline", "promote", other, "--reason", "round trip")
        assert moved.returncode == 0, moved.stderr
        state = get(server, "/model").json()
        assert state["model_tag"] == before  # kept
        assert state["promotion"]["currently_promoted"] == other and state["promotion"]["promoted"] is False
        assert f"the champion is now {other}: restart" in state["promotion"]["note"]
        assert state["promotion"]["last_moves"][0]["reason"] == "round trip"
        card = get(server, "/model/card").text
        assert "## Aliases" in card and "round trip" in card and f"the champion: {other}" in card
    finally:
        server.stop()
    server = Server(env, tmp_path / "serve.log").start()
    try:
        assert get(server, "/model").json()["model_tag"] == other
        rolled = python(store.home, "-m", "pipeline", "rollback", "--reason", "round trip back")
        assert rolled.returncode == 0 and f"champion: {before} (was {other})" in rolled.stdout, rolled.stderr
    finally:
        server.stop()
    server = Server(env, tmp_path / "serve.log").start()
    try:
        state = get(server, "/model").json()
        assert state["model_tag"] == before and state["promotion"]["promoted"] is True
    finally:
        server.stop()
