"""The Docker engine as Containerize uses it: reachable or not, BuildKit or the classic builder, the
base image, and the build itself with its whole log in a file. Every failure is a PackagingError of
one sentence (the command line prints it without a traceback)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from pipeline.errors import PackagingError

logger = logging.getLogger("pipeline.container")
PULL_TIMEOUT_S = 120
_STAGE = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` (the client first on PATH), never raising: an unusable client is a failed run."""
    try:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(["docker", *args], 127, "", f"`docker` could not run: {exc}")


def engine_version(bento_tag: str) -> str:
    """The engine's version, or a PackagingError saying no engine is reachable and what to do instead."""
    done = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    reason = (done.stderr.strip().splitlines() or ["`docker info` failed"])[-1]
    raise PackagingError(
        f"no container engine is reachable here ({reason}); run `make build-docker` on a machine with Docker, "
        f"or copy the Bento there (`bentoml export {bento_tag} bento.bento`, then `bentoml import bento.bento`) "
        f"and run `bentoml containerize {bento_tag}`"
    )


def buildkit_usable() -> bool:
    """Whether this client can build with BuildKit: it needs the buildx plugin since Docker 23 (older
    clients have BuildKit built in). ``DOCKER_BUILDKIT=0`` in the environment always wins."""
    if os.environ.get("DOCKER_BUILDKIT", "").strip() == "0":
        return False
    if docker("buildx", "version").returncode == 0:
        return True
    client = docker("version", "--format", "{{.Client.Version}}").stdout.strip()
    major = re.match(r"(\d+)\.", client)
    return bool(major) and int(major.group(1)) < 23  # type: ignore[union-attr]


def base_images(dockerfile: str) -> list[str]:
    """The images a Dockerfile starts from (not ``scratch``, not its own stages)."""
    stages: set[str] = set()
    bases = []
    for image, stage in _STAGE.findall(dockerfile):
        if image != "scratch" and image not in stages:
            bases.append(image)
        if stage:
            stages.add(stage)
    return bases


def ensure_image(image: str, log: Path) -> None:
    """``image`` is in the engine, pulled if it must be; otherwise a sentence on how to get it."""
    if docker("image", "inspect", image).returncode == 0:
        return
    logger.info("pulling the base image %s", image)
    pulled = docker("pull", image, timeout=PULL_TIMEOUT_S)
    with open(log, "a") as sink:
        sink.write(f"$ docker pull {image}\n{pulled.stdout}{pulled.stderr}\n")
    if pulled.returncode != 0:
        raise PackagingError(
            f"the base image {image} is not in the Docker engine and could not be pulled (see {log}); "
            f"run `docker pull {image}` where a registry is reachable, or build it from Debian packages "
            f"as docs/docker.md shows, then run `make build-docker` again"
        )


def build(bento_tag: str, image_tags: list[str], labels: dict[str, str], log: Path, buildkit: bool) -> None:
    """``bentoml containerize`` of ``bento_tag``; its whole output goes to ``log``."""
    command = [sys.executable, "-m", "bentoml", "containerize", bento_tag, "--backend", "docker"]
    for tag in image_tags:
        command += ["--image-tag", tag]
    for key, value in sorted(labels.items()):
        command += ["--opt", f"label={key}={value}"]
    if not buildkit:
        command += ["--opt", "force-rm"]  # the classic builder would keep a failed step's container
    env = {**os.environ, "DOCKER_BUILDKIT": "1" if buildkit else "0", "BENTOML_DO_NOT_TRACK": "true"}
    # The build prints nothing here until it ends (its output goes to the log): say so before it starts.
    logger.info(
        "building the image %s with %s: a minute or two (seconds when the dependency layers are cached); "
        "follow it with `tail -f %s`",
        bento_tag,
        "BuildKit" if buildkit else "the classic builder",
        log,
    )
    with open(log, "a") as sink:
        sink.write(f"$ DOCKER_BUILDKIT={env['DOCKER_BUILDKIT']} {' '.join(command)}\n")
        sink.flush()
        done = subprocess.run(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, check=False, cwd=_temporary_root(env)
        )
    missing = [tag for tag in image_tags if docker("image", "inspect", tag).returncode != 0]
    if done.returncode != 0 or missing:  # bentoml containerize can exit 0 after a failed build
        raise PackagingError(f"the image build of {bento_tag} failed{failed_step(log)}; full build log: {log}")


def _temporary_root(env: dict[str, str]) -> str:
    """Where `bentoml containerize` must run. BentoML 1.4.40 copies the Bento into a temporary folder and
    then refuses its own copy of our Dockerfile template as "outside of current working directory"
    (``resolve_user_filepath(..., secure=True)``): run it from the temporary root, with BENTOML_HOME
    made absolute so the store is still found from there."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    env["BENTOML_HOME"] = str(Path(BentoMLContainer.bentoml_home.get()).resolve())
    root = Path(tempfile.gettempdir()).resolve()
    env["TMPDIR"] = str(root)
    return str(root)


def failed_step(log: Path) -> str:
    """`` at step `RUN ...` `` from a build log (classic builder or BuildKit), or nothing."""
    text = log.read_text(errors="replace")
    # Classic builder: the last "Step n/m" started is the one that failed; BuildKit names it after " > [stage n/m]".
    steps = re.findall(r"^ > \[[^\]]+\] (.+?):?$", text, re.MULTILINE) or re.findall(r"Step \d+/\d+ : (.+)", text)
    return f" at step `{steps[-1].strip()[:120]}`" if steps else ""


def image_labels(image: str) -> dict[str, str] | None:
    """The labels of a local image, or None when the engine does not have it."""
    done = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image)
    if done.returncode != 0:
        return None
    return dict(json.loads(done.stdout or "null") or {})
