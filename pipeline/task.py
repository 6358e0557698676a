"""The base of every pipeline task: lineage parameters, atomic folder outputs and manifests."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import luigi

from pipeline.errors import PipelineError
from pipeline.provenance import (
    MANIFEST_NAME,
    code_version,
    git_state,
    library_versions,
    sha256_file,
    sha256_tree,
    write_json,
)
from pipeline.reference import DEFAULT_REFERENCE

DEFAULT_RAW_DATA = "data/Admission_Predict_Ver1.1.csv"
UNREADABLE = "unreadable"
# Shared by every task and long (hashes, paths): kept out of log lines; the task id and manifest have them.
_NOT_IN_LOGS = (
    "raw_data", "data_sha256", "reference_data", "reference_sha256", "code_version", "artefacts_dir", "build_inputs"
)  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class PipelineTask(luigi.Task):
    """A task whose id carries the raw data's hash and the code version.

    ``data_sha256`` and ``code_version`` are filled in when left empty, so a changed raw file or
    changed code yields new task ids instead of a stale "complete". Each task writes one folder,
    atomically: its files plus ``manifest.json`` appear together or not at all.
    """

    raw_data = luigi.Parameter(
        default=DEFAULT_RAW_DATA, significant=False, description="raw CSV file (its hash is what counts)"
    )
    data_sha256 = luigi.Parameter(default="", description="sha256 of the raw file; computed when empty")
    code_version = luigi.Parameter(default="", description="hash of the pipeline code; computed when empty")
    reference_data = luigi.Parameter(
        default=DEFAULT_REFERENCE, significant=False, description="the promotion gate's reference rows (CSV)"
    )
    reference_sha256 = luigi.Parameter(default="", description="sha256 of the reference file; computed when empty")
    seed = luigi.IntParameter(default=42, description="seed for every random step")
    artefacts_dir = luigi.Parameter(
        default="artefacts", significant=False, description="where task outputs are written"
    )

    @classmethod
    def get_param_values(cls, params: Any, args: Any, kwargs: Any) -> list[tuple[str, Any]]:
        values = dict(super().get_param_values(params, args, kwargs))
        if not values["data_sha256"]:
            try:
                values["data_sha256"] = sha256_file(Path(values["raw_data"]))
            except OSError:
                values["data_sha256"] = UNREADABLE  # PrepareData reports why, as a task failure
        if not values["reference_sha256"]:
            try:
                values["reference_sha256"] = sha256_file(Path(values["reference_data"]))
            except OSError:
                values["reference_sha256"] = UNREADABLE  # PrepareData reports why
        if not values["code_version"]:
            values["code_version"] = code_version()
        cls.fill_in(values)
        return [(name, values[name]) for name, _ in params]

    @classmethod
    def fill_in(cls, values: dict[str, Any]) -> None:
        """Fill in further computed parameters (subclasses); ``values`` maps names to values."""

    def complete(self) -> bool:
        done = bool(super().complete())
        if not done:
            warm_imports()
        return done

    def __repr__(self) -> str:
        """``TrainModel(candidate=ridge)``: only the parameters set away from their defaults."""
        shown = [
            f"{name}={param.serialize(self.param_kwargs[name])}"
            for name, param in self.get_params()
            if param.significant and name not in _NOT_IN_LOGS and self.param_kwargs[name] != param._default
        ]
        return f"{self.get_task_family()}({', '.join(shown)})"

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(Path(self.artefacts_dir) / self.get_task_family() / self.task_id))

    def run(self) -> None:
        started = _now()
        with self.output().temporary_path() as temporary:
            folder = Path(temporary)
            folder.mkdir(parents=True)
            try:
                details = self.produce(folder)
                write_json(folder / MANIFEST_NAME, self.manifest(folder, started, details))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # nothing half-written stays behind
                raise

    def produce(self, folder: Path) -> dict[str, Any]:
        """Write this task's files into ``folder``; return what the manifest should add."""
        raise NotImplementedError

    def manifest(self, folder: Path | None, started: str, details: dict[str, Any]) -> dict[str, Any]:
        """What made this task's output; ``folder`` holds the files to hash (None: nothing local)."""
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder else []
        return {
            "task_family": self.get_task_family(),
            "task_id": self.task_id,
            "parameters": self.to_str_params(),
            "upstream": upstream_records(self),
            "outputs": {p.name: sha256_file(p) for p in files},
            "code": {"version": self.code_version, **git_state()},
            "libraries": library_versions(),
            "started_at": started,
            "finished_at": _now(),
            **details,
        }

    def input_dir(self, name: str | None = None) -> Path:
        """The folder of the upstream task (or of the named one, when ``requires`` is a dict)."""
        inputs = self.input()
        target = inputs[name] if name is not None else inputs
        return Path(target.path)

    def on_failure(self, exception: BaseException) -> str:
        # The scheduler (and the visualiser) show this text: a plain sentence for expected errors.
        if isinstance(exception, PipelineError):
            return f"{type(exception).__name__}: {exception}"
        return str(super().on_failure(exception))


class StoreTask(PipelineTask):
    """A task whose output lives in a BentoML store; its manifest is kept in artefacts/.

    Complete means both: the item is in the store and the manifest is written. A run killed after
    storing, or ``make clean``, leaves only the item; the next run then writes the manifest without
    storing the item again.
    """

    def manifest_dir(self) -> Path:
        return Path(self.artefacts_dir) / self.get_task_family() / self.task_id

    def complete(self) -> bool:
        done = (self.manifest_dir() / MANIFEST_NAME).is_file() and bool(self.output().exists())
        if not done:
            warm_imports()
        return done

    def run(self) -> None:
        started = _now()
        manifest = self.manifest(None, started, {"tag": str(self.output())})
        del manifest["finished_at"]  # not known until the item is stored
        manifest["already_in_store"] = bool(self.output().exists())
        if manifest["already_in_store"]:
            self.adopt(manifest)
        else:
            self.publish(manifest)
        manifest["finished_at"] = _now()
        shutil.rmtree(self.manifest_dir(), ignore_errors=True)  # left from an item deleted from the store
        with luigi.LocalTarget(str(self.manifest_dir())).temporary_path() as temporary:
            Path(temporary).mkdir(parents=True)
            write_json(Path(temporary) / MANIFEST_NAME, manifest)

    def publish(self, manifest: dict[str, Any]) -> None:
        """Put the output into its store, with ``manifest`` (without its finish time) attached."""
        raise NotImplementedError

    def adopt(self, manifest: dict[str, Any]) -> None:
        """The item is already in the store (an earlier run stored it): complete what that run may not have
        done, and add to ``manifest`` what ``publish`` would have."""


def warm_imports() -> None:
    """Import the heavy libraries once, in the scheduling process, when there is work to do.

    Luigi's workers (``--workers 2`` and up) fork a process per task; modules imported before the fork
    are shared, so each task does not pay scikit-learn's import again. A no-op run never gets here; with
    one worker the tasks run in this process and import what they need as they run, so a run that stops
    at its first task (bad raw data) does not pay for scikit-learn and matplotlib (~1.2 s of CPU).
    """
    if luigi.interface.core().workers < 2:
        return
    import joblib  # noqa: F401
    import matplotlib.figure  # noqa: F401
    import sklearn.ensemble
    import sklearn.linear_model
    import sklearn.model_selection  # noqa: F401


def upstream_records(task: luigi.Task) -> list[dict[str, str]]:
    """Task ids and output hashes of a task's direct dependencies."""
    records = []
    for upstream in luigi.task.flatten(task.requires()):
        record = {"task_family": upstream.get_task_family(), "task_id": upstream.task_id}
        target = upstream.output()
        if isinstance(target, luigi.LocalTarget):
            path = Path(target.path)
            record.update(output=str(path), sha256=sha256_tree(path) if path.exists() else "")
        else:  # a store target (model or Bento): its tag identifies the content
            record.update(output=str(target), tag=str(getattr(target, "tag", target)))
        records.append(record)
    return records
