"""What both benchmark data shapes share: the vendored file, the column grids, the defects given to a
share of the rows, the writer (the vendored header and line endings) and the command line.

bench/synthetic_data.py and bench/jittered_data.py each draw the values of the eight columns; this
module turns them into a raw file like a real export. Nothing here is committed: files go where you say.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.contract import FEATURES, TARGET  # noqa: E402
from pipeline.data import COLUMNS, read_raw  # noqa: E402

VENDORED = ROOT / "data" / "Admission_Predict_Ver1.1.csv"
# Defects that each break one rule of the contract: (column, raw text).
DEFECTS = (
    ("toefl_score", ""),
    ("gre_score", "250"),
    ("cgpa", "abc"),
    ("sop", "4.2"),
    ("lor", "=1+1"),
    ("chance_of_admit", "1.5"),
)
# Draws ``rows`` values per column (name -> array) from the vendored rows (as floats) and a generator.
Draw = Callable[[pd.DataFrame, int, np.random.Generator], dict[str, np.ndarray]]


def on_grid(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` rounded to the column's grid in the contract (integers, steps of 0.5, two decimals)."""
    spec = next(spec for spec in (*FEATURES, TARGET) if spec.name == name)
    if spec.integer:
        return np.rint(values)
    if spec.step:
        return np.rint(values / spec.step) * spec.step
    return np.round(values, 2)


def sample(draw: Draw, rows: int, seed: int, bad_share: float) -> pd.DataFrame:
    """``rows`` raw rows as text cells with a serial number: ``draw``'s values on each column's grid,
    clipped to the vendored range, and ``bad_share`` of the rows given one defect each."""
    vendored = read_raw(VENDORED).astype(float)
    rng = np.random.default_rng(seed)
    drawn = draw(vendored, rows, rng)
    cells = {}
    for name in COLUMNS:
        values = np.clip(on_grid(drawn[name], name), vendored[name].min(), vendored[name].max())
        cells[name] = pd.Series(values).map("{:g}".format).to_numpy(dtype=object)
    bad = rng.choice(rows, size=int(rows * bad_share), replace=False)
    for row, kind in zip(bad, rng.integers(len(DEFECTS), size=len(bad)), strict=True):
        name, text = DEFECTS[kind]
        cells[name][row] = text
    frame = pd.DataFrame(cells)
    frame.insert(0, "serial_no", np.arange(1, rows + 1))
    return frame


def write(draw: Draw, path: Path, rows: int, seed: int = 0, bad_share: float = 0.01) -> None:
    """Write ``rows`` rows drawn by ``draw`` to ``path`` with the vendored file's header and line endings."""
    header = VENDORED.read_text(encoding="utf-8").splitlines()[0]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\r\n")
        sample(draw, rows, seed, bad_share).to_csv(handle, header=False, index=False, lineterminator="\r\n")


def main(draw: Draw, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("rows", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bad-share", type=float, default=0.01, help="share of rows given one defect")
    args = parser.parse_args()
    write(draw, args.out, args.rows, args.seed, args.bad_share)
    print(f"{args.out}: {args.rows} rows, {int(args.rows * args.bad_share)} with a defect")
