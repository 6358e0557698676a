"""A raw file of any size, drawn from the vendored data's distribution, for the pipeline-at-scale benchmarks.

The eight columns are sampled from a multivariate normal with the vendored rows' means and covariance
(so the correlations the models learn are kept), then rounded to each column's grid in the contract
(integers, steps of 0.5, two decimals) and clipped to the vendored range. ``--bad-share`` of the rows
get one defect each (a blank, an out-of-range or non-numeric value, a spreadsheet formula, an off-grid
step), so the reject path is exercised too. Nothing here is committed: files go where you say.

    .tox/dev/bin/python bench/synthetic_data.py ROWS OUT.csv [--seed 0] [--bad-share 0.01]
"""

from __future__ import annotations

import argparse
import sys
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


def _grid(values: np.ndarray, name: str) -> np.ndarray:
    spec = next(spec for spec in (*FEATURES, TARGET) if spec.name == name)
    if spec.integer:
        return np.rint(values)
    if spec.step:
        return np.rint(values / spec.step) * spec.step
    return np.round(values, 2)


def sample(rows: int, seed: int, bad_share: float) -> pd.DataFrame:
    """``rows`` raw rows as text cells, with the vendored file's header and a serial number."""
    vendored = read_raw(VENDORED).astype(float)
    rng = np.random.default_rng(seed)
    drawn = rng.multivariate_normal(vendored.mean().to_numpy(), vendored.cov().to_numpy(), size=rows)
    cells = {}
    for position, name in enumerate(COLUMNS):
        low, high = vendored[name].min(), vendored[name].max()
        values = np.clip(_grid(drawn[:, position], name), low, high)
        cells[name] = pd.Series(values).map("{:g}".format).to_numpy(dtype=object)
    bad = rng.choice(rows, size=int(rows * bad_share), replace=False)
    for row, kind in zip(bad, rng.integers(len(DEFECTS), size=len(bad)), strict=True):
        name, text = DEFECTS[kind]
        cells[name][row] = text
    frame = pd.DataFrame(cells)
    frame.insert(0, "serial_no", np.arange(1, rows + 1))
    return frame


def write_raw(path: Path, rows: int, seed: int = 0, bad_share: float = 0.01) -> None:
    """Write ``rows`` sampled rows to ``path`` with the vendored file's header and line endings."""
    header = VENDORED.read_text(encoding="utf-8").splitlines()[0]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\r\n")
        sample(rows, seed, bad_share).to_csv(handle, header=False, index=False, lineterminator="\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bad-share", type=float, default=0.01, help="share of rows given one defect")
    args = parser.parse_args()
    write_raw(args.out, args.rows, args.seed, args.bad_share)
    print(f"{args.out}: {args.rows} rows, {int(args.rows * args.bad_share)} with a defect")


if __name__ == "__main__":
    main()
