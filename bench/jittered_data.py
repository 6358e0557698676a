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
``--bad-share`` of the rows get one defect each (bench/raw_rows.py). Nothing here is
committed: files go where you say.

    .tox/dev/bin/python bench/jittered_data.py ROWS OUT.csv [--seed 0] [--bad-share 0.01]
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import raw_rows

# Standard deviation of the Gaussian noise per column (before rounding to the column's grid).
NOISE = {"gre_score": 3.0, "toefl_score": 2.0, "cgpa": 0.1, "chance_of_admit": 0.02}
HALF_STEP_MOVE = {"sop": 0.3, "lor": 0.3}  # probability of a half-step move, up or down equally


def draw(vendored: pd.DataFrame, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    drawn = vendored.iloc[rng.integers(len(vendored), size=rows)].reset_index(drop=True)
    values = {}
    for name in vendored.columns:
        column = drawn[name].to_numpy()
        if name in NOISE:
            column = column + rng.normal(0.0, NOISE[name], size=rows)
        elif name in HALF_STEP_MOVE:
            moved = rng.random(rows) < HALF_STEP_MOVE[name]
            column = column + moved * rng.choice([-0.5, 0.5], size=rows)
        values[name] = column
    return values


write_raw = partial(raw_rows.write, draw)

if __name__ == "__main__":
    raw_rows.main(draw, __doc__.splitlines()[0])
