"""The vendored raw file is the published one, and every row of it meets the feature contract."""

import re

from pipeline.data import read_raw, validate
from pipeline.provenance import sha256_file
from tests.support.paths import RAW_DATA, ROOT


def test_vendored_file_matches_its_recorded_provenance() -> None:
    recorded = re.search(r"sha256 \| `([0-9a-f]{64})`", (ROOT / "data" / "README.md").read_text())
    assert recorded is not None
    assert sha256_file(RAW_DATA) == recorded.group(1)


def test_every_vendored_row_is_valid_and_unique() -> None:
    raw = read_raw(RAW_DATA)
    valid, rejects = validate(raw)
    assert len(raw) == 500
    assert rejects.empty, rejects["reason"].tolist()
    assert len(valid) == 500


def test_vendored_values_lie_within_the_contract_bounds() -> None:
    valid, _ = validate(read_raw(RAW_DATA))
    assert valid["gre_score"].between(260, 340).all()
    assert valid["toefl_score"].between(0, 120).all()
    assert set(valid["university_rating"]) <= {1, 2, 3, 4, 5}
    assert set(valid["research"]) <= {0, 1}
    assert ((valid[["sop", "lor"]] * 2) % 1 == 0).all().all()
    assert valid["chance_of_admit"].between(0, 1).all()
