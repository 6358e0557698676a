"""BuildBento and Containerize: the registered model, served by the service, as a Bento and an image."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bentoml
import luigi
from bentoml.exceptions import NotFound
from luigi.util import inherits

from core import aliases
from core.artefact import MODEL_NAME
from pipeline import container
from pipeline.errors import PackagingError, PromotionRefusedError
from pipeline.promote import FORCED, PROMOTED, PromoteModel, load_decision
from pipeline.provenance import PROJECT_ROOT, git_state, sha256_file, write_json
from pipeline.report import ReportRun
from pipeline.stores import StoreTarget
from pipeline.task import PipelineTask, StoreTask

logger = logging.getLogger("pipeline.package")
BENTO_NAME = "admissions_api"
# What goes into the Bento besides the model: a change here must give a new Bento.
BUILD_INPUTS = (
    "bentofile.yaml",
    "requirements/service.txt",
    "core/*.py",
    "service/**/*.py",
    "deploy/docker/Dockerfile.j2",
)
IMAGE_FILE = "image.json"
LATEST_IMAGE = f"{BENTO_NAME}:latest"  # what `make run-docker` runs unless told otherwise
LABEL = "org.graduate-admissions"  # prefix of the image's own labels (OCI's are org.opencontainers.image.*)
_TAIL = 1500  # characters of a failing tool's output worth showing
_LISTED = 8  # existing tags named in an "unknown tag" error


def build_inputs_sha256(root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    for pattern in BUILD_INPUTS:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def bentoml_command(*args: str) -> list[str]:
    """``bentoml`` of this environment (not whatever is first on PATH)."""
    return [sys.executable, "-m", "bentoml", *args]


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-_TAIL:]
        raise PackagingError(f"{what} failed (exit {done.returncode}): {output}")
    return done.stdout


def build_bento(tag: str, bentofile: str, model_tag: str, labels: dict[str, str]) -> None:
    """``bentoml build`` with the model pinned by its exact tag (a Bento argument the service reads)."""
    name, version = tag.split(":")
    command = bentoml_command("build", "-f", bentofile, "--name", name, "--version", version, "-o", "tag")
    command += ["--arg", f"model_tag={model_tag}"]
    for key, value in sorted(labels.items()):
        command += ["--label", f"{key}={value}"]
    _run([*command, str(PROJECT_ROOT)], f"bentoml build of {tag}")


def full_tag(name: str, value: str) -> str:
    """``v1`` or ``name:v1`` -> ``name:v1``; ``latest`` becomes the exact tag it points at, when there is one,
    and a model alias (``champion``, ``challenger``) the tag it names, when it names one."""
    tag = value.strip() if ":" in value else f"{name}:{value.strip()}"
    version = tag.split(":", maxsplit=1)[1]
    if name == MODEL_NAME and version in aliases.ALIASES:
        return aliases.alias_tag(name, version) or tag
    if tag.endswith(":latest"):
        lookup = bentoml.models.get if name == MODEL_NAME else bentoml.get
        try:
            return str(lookup(tag).tag)
        except NotFound:
            return tag
    return tag


def unknown(what: str, tag: str, existing: list[str], hint: str) -> PackagingError:
    """One sentence: the tag is not there, these are (newest first), and how to make one."""
    shown = ", ".join(existing[:_LISTED]) + (f" and {len(existing) - _LISTED} more" if len(existing) > _LISTED else "")
    there = f"there are: {shown}" if existing else "there are none"
    return PackagingError(f"no {what} {tag} in the store of this BENTOML_HOME ({there}); {hint}")


def registered_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except NotFound:
        version = tag.rsplit(":", maxsplit=1)[-1]
        if version in aliases.ALIASES:
            raise PackagingError(f"no model is {version} in this store yet (`make aliases`)") from None
        existing = [str(m.tag) for m in sorted(bentoml.models.list(MODEL_NAME), key=lambda m: m.creation_time)]
        raise unknown("registered model", tag, existing[::-1], "`make register` registers one") from None


def stored_bento(tag: str) -> bentoml.Bento:
    try:
        return bentoml.get(tag)
    except NotFound:
        existing = [str(b.tag) for b in sorted(bentoml.list(BENTO_NAME), key=lambda b: b.creation_time)]
        raise unknown("Bento", tag, existing[::-1], "`make build-bento` builds one") from None


def image_labels(bento: bentoml.Bento) -> dict[str, str]:
    """OCI labels, plus the project's own: the Bento, its model, the data and code it came from."""
    model_tag = str((bento.info.args or {}).get("model_tag", ""))
    data_sha256 = ""
    if model_tag:
        model = registered_model(model_tag)
        manifest: Any = model.info.metadata.get("manifest") or {}
        data_sha256 = str(manifest.get("parameters", {}).get("data_sha256") or model.info.labels.get("data_sha256", ""))
    bento_labels = dict(bento.info.labels)
    return {
        "org.opencontainers.image.title": BENTO_NAME,
        "org.opencontainers.image.description": "Graduate-admission chance: JWT-secured API and model services",
        "org.opencontainers.image.version": str(bento.tag.version),
        "org.opencontainers.image.revision": bento_labels.get("git_commit", "unknown"),
        "org.opencontainers.image.created": datetime.now(UTC).isoformat(timespec="seconds"),
        "org.opencontainers.image.licenses": "MIT",
        f"{LABEL}.bento": str(bento.tag),
        f"{LABEL}.model-tag": model_tag,
        f"{LABEL}.data-sha256": data_sha256,
        f"{LABEL}.code-version": bento_labels.get("code_version", ""),
        f"{LABEL}.git-dirty": bento_labels.get("git_dirty", "unknown"),
    }


@inherits(PromoteModel)
class BuildBento(StoreTask):
    """The Bento of ``bentofile.yaml`` carrying the run's model once the promotion gate passed it (Bento store)."""

    bentofile = luigi.Parameter(default="bentofile.yaml", description="the Bento's build file")
    build_inputs = luigi.Parameter(
        default="", description="sha256 of bentofile, service code and its pins; computed when empty"
    )
    model_version = luigi.Parameter(
        default="", description="a registered model (admissions:<version>) to package instead of the pipeline's"
    )

    @classmethod
    def fill_in(cls, values: dict[str, Any]) -> None:
        values["build_inputs"] = values["build_inputs"] or build_inputs_sha256()
        if values["model_version"]:
            values["model_version"] = full_tag(MODEL_NAME, values["model_version"])

    def requires(self) -> ReportRun | list[ReportRun]:
        # A given model is already registered: nothing upstream to run. Otherwise the gate and the report.
        return [] if self.model_version else self.clone(ReportRun)

    @property
    def model_tag(self) -> str:
        if self.model_version:
            return str(self.model_version)
        return str(self.clone(PromoteModel).model_tag)

    def complete(self) -> bool:
        # Luigi looks no further up than a complete task: a gate verdict missing from the store (or a
        # forced promotion asked for) must still reach PromoteModel when the Bento exists.
        return bool(super().complete()) and (bool(self.model_version) or self.clone(PromoteModel).complete())

    def run(self) -> None:
        if not self.model_version:  # only a model the gate let through (or forced) is packaged
            decision = load_decision(Path(self.clone(PromoteModel).output().path))
            if decision["verdict"] not in (PROMOTED, FORCED):
                raise PromotionRefusedError(decision.get("refusal") or f"{self.model_tag}: {decision['outcome']}")
        super().run()

    @property
    def bento_tag(self) -> str:
        return f"{BENTO_NAME}:{hashlib.sha256(self.task_id.encode()).hexdigest()[:16]}"

    def output(self) -> StoreTarget:  # type: ignore[override]
        return StoreTarget(self.bento_tag, bentoml.get)

    def publish(self, manifest: dict[str, Any]) -> None:
        model_tag = self.model_tag
        model = registered_model(model_tag)  # a one-line error naming the registered ones if it is not there
        git = git_state()
        labels = {
            "model_tag": model_tag.replace(":", "-"),  # label values allow no colon
            "data_sha256": str(model.info.labels.get("data_sha256", self.data_sha256[:12])),
            "code_version": self.code_version,
            "build_inputs": self.build_inputs[:12],
            "pipeline_task": hashlib.sha256(self.task_id.encode()).hexdigest()[:16],
            "git_commit": git["commit"] or "unknown",
            "git_dirty": str(git["dirty"]).lower(),
        }
        manifest.update(model_tag=model_tag, bento_labels=labels)
        build_bento(self.bento_tag, self.bentofile, model_tag, labels)

    def adopt(self, manifest: dict[str, Any]) -> None:
        # Built by an earlier run (killed before its manifest, or before `make clean`): record what it holds.
        manifest.update(model_tag=self.model_tag, bento_labels=dict(bentoml.get(self.bento_tag).info.labels))


@inherits(BuildBento)
class Containerize(PipelineTask):
    """``bentoml containerize`` of the Bento into an image tagged like the Bento, and ``admissions_api:latest``
    when the Bento's model is the champion (so `make run-docker` without a tag runs the champion).

    With ``--bento TAG`` it containerizes that Bento from the store; otherwise the one BuildBento makes.
    Complete when its record (image.json) is written and the engine still has the image.
    """

    bento = luigi.Parameter(default="", description="a Bento in the store to containerize (default: BuildBento's)")
    tag_latest = luigi.BoolParameter(
        default=True,
        parsing=luigi.BoolParameter.EXPLICIT_PARSING,
        significant=False,
        description=f"also tag the image {LATEST_IMAGE} when its model is the champion (false: never; the test suites)",
    )

    @classmethod
    def fill_in(cls, values: dict[str, Any]) -> None:
        BuildBento.fill_in(values)
        if values["bento"]:
            values["bento"] = full_tag(BENTO_NAME, values["bento"])

    def requires(self) -> BuildBento | list[BuildBento]:
        return [] if self.bento else self.clone(BuildBento)

    @property
    def bento_tag(self) -> str:
        if self.bento:
            return str(self.bento)
        upstream = self.requires()
        assert isinstance(upstream, BuildBento)
        return upstream.bento_tag

    def complete(self) -> bool:
        return bool(super().complete()) and container.image_labels(self.bento_tag) is not None

    def latest_for(self, model_tag: str) -> tuple[list[str], str]:
        """``[latest tag]`` when the image's model is the champion (what `make run-docker` runs by default
        follows the champion), else ``[]`` and why not."""
        if not self.tag_latest:
            return [], f"not tagged {LATEST_IMAGE}: --tag-latest false"
        champion = aliases.promoted_tag(MODEL_NAME)
        if model_tag != champion:
            return [], f"not tagged {LATEST_IMAGE}: its model {model_tag} is not the champion ({champion or 'none'})"
        return [LATEST_IMAGE], ""

    def log_path(self) -> Path:
        """The whole build output; outside the task's folder, so it survives a failed build."""
        folder = Path(self.artefacts_dir) / self.get_task_family() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.bento_tag.replace(':', '-')}.log"

    def produce(self, folder: Path) -> dict[str, Any]:
        bento = stored_bento(self.bento_tag)
        engine = container.engine_version(self.bento_tag)
        log = self.log_path()
        log.write_text(f"# build of {bento.tag} on docker {engine}\n")
        buildkit = container.buildkit_usable()
        if not buildkit:
            logger.warning("no docker buildx plugin for BuildKit here: building with the classic builder instead")
        dockerfile = Path(bento.path, "env", "docker", "Dockerfile").read_text()
        for base in container.base_images(dockerfile):
            container.ensure_image(base, log)
        labels = image_labels(bento)
        latest, why_not = self.latest_for(labels[f"{LABEL}.model-tag"])
        container.build(str(bento.tag), [str(bento.tag), *latest], labels, log, buildkit)
        logger.info(
            "image %s built (%s); build log: %s", bento.tag, f"also tagged {latest[0]}" if latest else why_not, log
        )
        image = {
            "image": str(bento.tag),
            "also_tagged": latest[0] if latest else None,
            "not_tagged_latest": why_not or None,
            "bento": str(bento.tag),
            "model_tag": labels[f"{LABEL}.model-tag"],
            "labels": labels,
            "builder": "buildkit" if buildkit else "classic",
            "engine": f"docker {engine}",
            "build_log": str(log),
        }
        write_json(folder / IMAGE_FILE, image)
        return image
