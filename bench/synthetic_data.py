"""A raw file of any size, drawn from the vendored data's distribution, for the pipeline-at-scale benchmarks.

The eight columns are sampled from a multivariate normal with the vendored rows' means and covariance
(so the correlations the models learn are kept), then rounded to each column's grid in the contract
(integers, steps of 0.5, two decimals) and clipped to the vendored range. ``--bad-share`` of the rows
get one defect each (a blank, an out-of-range or non-numeric value, a spreadsheet formula, an off-grid
step), so the reject path is exercised too (bench/raw_rows.py). Nothing here is committed: files go
where you say.

    .tox/dev/bin/python bench/synthetic_data.py ROWS OUT.csv [--seed 0] [--bad-share 0.01]
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import raw_rows

VENDORED = raw_rows.VENDORED


def draw(vendored: pd.DataFrame, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    drawn = rng.multivariate_normal(vendored.mean().to_numpy(), vendored.cov().to_numpy(), size=rows)
    return {name: drawn[:, position] for position, name in enumerate(vendored.columns)}


write_raw = partial(raw_rows.write, draw)

if __name__ == "__main__":
    raw_rows.main(draw, __doc__.splitlines()[0])
