"""The verdict of `make bench-service` (or, with --compose, of `make bench-compose`): each figure
against its target, and exit 1 when one misses.

    python bench/verdict.py [--compose] OUTPUT_DIR

Reads what bench/service.sh left in OUTPUT_DIR: wrk's RESULT lines (``*.wrk``), hey's summaries
(``*.hey``, with the rows per request in ``*.rows``) and bench/batch_throughput.py's job lines
(``*.job``). A figure that is missing (a step failed) is a miss too.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    name: str
    unit: str
    goal: float
    higher_is_better: bool

    def met(self, value: float) -> bool:
        return value >= self.goal if self.higher_is_better else value <= self.goal


def wrk(path: Path) -> dict[str, float]:
    line = next(line for line in path.read_text().splitlines() if line.startswith("RESULT "))
    return {key: float(value) for key, value in (pair.split("=") for pair in line.split()[1:])}


def hey(path: Path) -> dict[str, float]:
    text = path.read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"99% in ([\d.]+) secs", text).group(1))  # type: ignore[union-attr]
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", text))
    total = sum(int(n) for n in re.findall(r"\[\d{3}\]\s+(\d+) responses", text))
    rows = float(path.with_suffix(".rows").read_text())
    return {"rows_per_s": rps * rows, "p99_ms": p99 * 1000, "failed": total - ok + len(re.findall("Error", text))}


def job(path: Path) -> dict[str, float]:
    line = next(line for line in path.read_text().splitlines() if line.startswith("job "))
    figures = json.loads(line[len("job ") :])
    figures["failed"] = 0 if figures["status"] == "completed" else 1
    return figures


def figures(out: Path) -> list[tuple[Target, Callable[[], float]]]:
    """Each target and how to read its figure from the output folder."""
    return [
        (Target("/predict req/s vs a raw Starlette app (10 clients)", "x", 0.6, True),
         lambda: wrk(out / "predict_api.wrk")["rps"] / wrk(out / "predict_raw.wrk")["rps"]),
        (Target("/predict p99 (10 clients)", "ms", 10, False), lambda: wrk(out / "predict_api.wrk")["p99_ms"]),
        (Target("/predict failed answers (64 clients)", "", 0, False),
         lambda: sum(wrk(out / "predict_64.wrk")[k] for k in ("non2xx", "connect", "read", "write", "timeout"))),
        (Target("/predict_batch JSON rows/s (10k-row batches)", "rows/s", 300_000, True),
         lambda: hey(out / "batch_json.hey")["rows_per_s"]),
        (Target("/predict_batch JSON failed answers", "", 0, False), lambda: hey(out / "batch_json.hey")["failed"]),
        (Target("/predict_batch CSV rows/s (100k-row batches)", "rows/s", 1_000_000, True),
         lambda: hey(out / "batch_csv.hey")["rows_per_s"]),
        (Target("/predict_batch CSV failed answers", "", 0, False), lambda: hey(out / "batch_csv.hey")["failed"]),
        (Target("1M-row CSV job: submitted, completed, downloaded", "s", 3, False),
         lambda: job(out / "job_csv.job")["total_s"] + 100 * job(out / "job_csv.job")["failed"]),
        (Target("100k-row JSON job: submitted to completed", "s", 10, False),
         lambda: job(out / "job_json.job")["submitted_to_completed_s"] + 100 * job(out / "job_json.job")["failed"]),
        (Target("/predict req/s, prediction log on vs off", "x", 0.9, True),
         lambda: wrk(out / "predict_log_on.wrk")["rps"] / wrk(out / "predict_log_off.wrk")["rps"]),
        (Target("1M-row CSV job time, prediction log on vs off", "x", 2.0, False),
         lambda: job(out / "job_csv.job")["total_s"] / job(out / "job_csv_log_off.job")["total_s"]),
    ]  # fmt: skip


def mean(values: list[float]) -> float:
    if not values:
        raise ValueError("no figures")
    return sum(values) / len(values)


def compose_figures(out: Path) -> list[tuple[Target, Callable[[], float]]]:
    """bench/compose.sh: rounds of in-process and compose runs alternated (``*_r<round>.wrk``), averaged."""
    rps = lambda kind: mean([wrk(path)["rps"] for path in sorted(out.glob(f"{kind}_r[0-9]*.wrk"))])  # noqa: E731
    failed = lambda name: sum(wrk(out / name)[k] for k in ("non2xx", "connect", "read", "write", "timeout"))  # noqa: E731
    return [
        (Target("compose /predict req/s vs in-process (10 clients)", "x", 0.4, True),
         lambda: rps("compose") / rps("in_process")),
        (Target("compose /predict p99 (10 clients)", "ms", 15, False),
         lambda: mean([wrk(path)["p99_ms"] for path in sorted(out.glob("compose_r[0-9]*.wrk"))])),
        (Target("compose /predict failed answers (64 clients)", "", 0, False), lambda: failed("compose_64.wrk")),
        (Target("compose /predict failed answers (256 clients)", "", 0, False), lambda: failed("compose_256.wrk")),
    ]  # fmt: skip


def main(out: Path, compose: bool = False) -> int:
    misses = 0
    print(f"\n{'target':<52} {'figure':>14} {'goal':>14}  verdict")
    for target, read in (compose_figures if compose else figures)(out):
        try:
            value: float | None = read()
        except (OSError, StopIteration, AttributeError, KeyError, ValueError, ZeroDivisionError):
            value = None
        ok = value is not None and target.met(value)
        misses += not ok
        sign = ">=" if target.higher_is_better else "<="
        shown = "missing" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        print(f"{target.name:<52} {shown:>14} {sign} {target.goal:>11,g}  {'PASS' if ok else 'MISS'}")
    print(f"\n{'all targets met' if not misses else f'{misses} target(s) missed'}")
    return 1 if misses else 0


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--compose"]
    if len(arguments) != 1:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(arguments[0]), compose="--compose" in sys.argv[1:]))
