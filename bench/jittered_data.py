"""A raw file of any size made of jittered copies of the vendored rows: the second data shape of the benchmarks.

bench/synthetic_data.py draws from a multivariate normal, so its label is linear in the features and
every candidate's trees see smooth, untied data. Real exports look more like this file: each row is a
vendored applicant (drawn with replacement, seeded) with small noise on each cell, rounded to the
column's grid in the contract and clipped to the vendored range, so the labels keep the vendored rows'
non-linear structure and the file holds ~500 tight clusters of near-copies (many tied values).

Noise per column: GRE +- N(0, 3) points, TOEFL +- N(0, 2) points, CGPA +- N(0, 0.1), the label
+- N(0, 0.02) (both to two decimals), SOP and LOR move one half-step up or down with probability
0.3 each, university rating and research are kept. At a million rows ~3% of the rows repeat an
earlier one (rejected as duplicates: with the defects ~4% are rejected, under the 5% a run allows).
``--bad-share`` of the rows get one defect each, as in bench/synthetic_data.py. Nothing here is
committed: files go where you say.

    .tox/dev/bin/python bench/jittered_data.py ROWS OUT.csv [--seed 0] [--bad-share 0.01]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synthetic_data import DEFECTS, VENDORED, _grid  # noqa: E402
from pipeline.data import COLUMNS, read_raw  # noqa: E402

# Standard deviation of the Gaussian noise per column (before rounding to the column's grid).
NOISE = {"gre_score": 3.0, "toefl_score": 2.0, "cgpa": 0.1, "chance_of_admit": 0.02}
HALF_STEP_MOVE = {"sop": 0.3, "lor": 0.3}  # probability of a half-step move, up or down equally


def sample(rows: int, seed: int, bad_share: float) -> pd.DataFrame:
    """``rows`` raw rows as text cells, with the vendored file's header and a serial number."""
    vendored = read_raw(VENDORED).astype(float)
    rng = np.random.default_rng(seed)
    drawn = vendored.iloc[rng.integers(len(vendored), size=rows)].reset_index(drop=True)
    cells = {}
    for name in COLUMNS:
        values = drawn[name].to_numpy()
        if name in NOISE:
            values = values + rng.normal(0.0, NOISE[name], size=rows)
        elif name in HALF_STEP_MOVE:
            moved = rng.random(rows) < HALF_STEP_MOVE[name]
            values = values + moved * rng.choice([-0.5, 0.5], size=rows)
        low, high = vendored[name].min(), vendored[name].max()
        values = np.clip(_grid(values, name), low, high)
        cells[name] = pd.Series(values).map("{:g}".format).to_numpy(dtype=object)
    bad = rng.choice(rows, size=int(rows * bad_share), replace=False)
    for row, kind in zip(bad, rng.integers(len(DEFECTS), size=len(bad)), strict=True):
        name, text = DEFECTS[kind]
        cells[name][row] = text
    frame = pd.DataFrame(cells)
    frame.insert(0, "serial_no", np.arange(1, rows + 1))
    return frame


def write_raw(path: Path, rows: int, seed: int = 0, bad_share: float = 0.01) -> None:
    """Write ``rows`` jittered rows to ``path`` with the vendored file's header and line endings."""
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
