"""Columnar bodies (service/columnar.py) and the batch hop's blocks (service/wire.py), without a server."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.contract import FEATURE_NAMES, FEATURES
from service import columnar, wire
from service.errors import InvalidInputError
from service.schemas import as_rows, batch_request

HEADER = ",".join(FEATURE_NAMES)
GOOD = dict(gre_score=320, toefl_score=110, university_rating=4, sop=4.5, lor=4.0, cgpa=9.1, research=1)
Request = batch_request("Request", 1_000)


def csv_body(rows: list[dict[str, Any]], header: str = HEADER) -> bytes:
    names = header.split(",")
    return (header + "\n" + "".join(",".join(str(row[n]) for n in names) + "\n" for row in rows)).encode()


def problems(body: bytes, max_rows: int = 1_000) -> list[str]:
    with pytest.raises(InvalidInputError) as caught:
        columnar.rows_from_csv(body, max_rows)
    found: list[str] = caught.value.body().get("problems") or [caught.value.message]
    return found


# Values that break or keep each rule: the fast JSON path must never accept what pydantic refuses.
feature_values = st.one_of(
    st.integers(-5, 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 4.5, 4.25, 320.0, 9.1, True, False, "4", None, 10**400]),
)
rows = st.fixed_dictionaries({name: feature_values for name in FEATURE_NAMES})


@settings(max_examples=400, deadline=None)
@given(st.lists(rows, min_size=1, max_size=4))
def test_the_json_fast_path_accepts_only_what_the_contract_accepts(applicants: list[dict[str, Any]]) -> None:
    body = json.dumps({"applicants": applicants}).encode()
    fast = columnar.rows_from_json(body, 1_000)
    try:
        expected = as_rows(Request.model_validate_json(body).applicants)  # type: ignore[attr-defined]
    except ValidationError:
        assert fast is None
        return
    if fast is not None:  # it may leave a valid body to pydantic, never give other values
        np.testing.assert_array_equal(fast, expected)


def test_the_json_fast_path_takes_valid_bodies_and_leaves_odd_ones_to_pydantic() -> None:
    rng = np.random.default_rng(5)
    applicants = [
        {**GOOD, "gre_score": int(rng.integers(260, 341)), "cgpa": float(rng.uniform(0, 10))} for _ in range(500)
    ]
    body = json.dumps({"applicants": applicants}).encode()
    np.testing.assert_array_equal(
        columnar.rows_from_json(body, 500),
        as_rows(Request.model_validate_json(body).applicants),  # type: ignore[attr-defined]
    )
    assert columnar.rows_from_json(body, 499) is None  # too many rows: pydantic says so
    assert columnar.rows_from_json(b'{"applicants": [], "x": 1}', 10) is None
    assert columnar.rows_from_json(b"not json", 10) is None
    assert columnar.rows_from_json(json.dumps({"applicants": [{**GOOD, "extra": 1}]}).encode(), 10) is None


def test_a_csv_body_gives_the_rows_of_the_same_json_body_in_any_column_order() -> None:
    applicants = [GOOD, {**GOOD, "cgpa": 8.123456789012345, "sop": 1, "research": 0}]
    expected = as_rows(applicants)
    np.testing.assert_array_equal(columnar.rows_from_csv(csv_body(applicants), 10), expected)
    shuffled = ",".join(reversed(FEATURE_NAMES))
    np.testing.assert_array_equal(columnar.rows_from_csv(csv_body(applicants, shuffled), 10), expected)
    with_bom = b"\xef\xbb\xbf" + csv_body(applicants).replace(b"\n", b"\r\n") + b"\r\n"  # as spreadsheets save
    np.testing.assert_array_equal(columnar.rows_from_csv(with_bom, 10), expected)


@pytest.mark.parametrize(
    ("cell", "column", "reason"),
    [
        ("320.5", "gre_score", "'320.5' is not an integer"),
        ("true", "research", "'true' is not an integer"),
        ("", "cgpa", "'' is not a number"),
        ("abc", "cgpa", "'abc' is not a number"),
        ("nan", "cgpa", "'nan' is not between 0 and 10"),
        ("11", "cgpa", "'11' is not between 0 and 10"),
        ("4.2", "sop", "'4.2' is not a multiple of 0.5"),
        ("1e400", "toefl_score", "'1e400' is not between 0 and 120"),
    ],
)
def test_a_bad_csv_cell_is_named_by_line_and_column(cell: str, column: str, reason: str) -> None:
    body = csv_body([GOOD, GOOD, {**GOOD, column: cell}])
    assert problems(body) == [f"line 4, column {column}: {reason}"]


def test_csv_problems_are_counted_and_the_first_ten_listed() -> None:
    body = csv_body([{**GOOD, "cgpa": 99}] * 25) + b"1,2\n"
    with pytest.raises(InvalidInputError) as caught:
        columnar.rows_from_csv(body, 1_000)
    answer = caught.value.body()
    assert answer["problem_count"] == 26 and len(answer["problems"]) == columnar.SHOWN_PROBLEMS
    assert answer["problems"][0] == "line 2, column cgpa: '99' is not between 0 and 10"
    assert "the first 10 are listed" in answer["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "must start with a header line"),
        (b"gre_score,toefl\n1,2\n", "missing toefl_score"),
        (b"gre_score,toefl\n1,2\n", "unknown toefl"),
        ((HEADER.replace("research", "cgpa") + "\n1\n").encode(), "missing research; repeated cgpa"),
        ((HEADER + ",cgpa\n").encode(), "has 8 columns, more than the contract's 7"),
        ((HEADER + "\n").encode(), "has a header but no rows"),
        (csv_body([GOOD]) + b"320,110,4,4.5,4.0,9.1\n", "line 3: 6 value(s), but the header has 7 columns"),
        (csv_body([GOOD]) + b"320,110,4,4.5,4.0,9.1,1,7\n", "line 3: 8 value(s), but the header has 7 columns"),
    ],
)
def test_a_csv_body_of_the_wrong_shape_is_refused_with_a_reason(body: bytes, message: str) -> None:
    assert any(message in problem for problem in problems(body))


@pytest.mark.parametrize("columns", [8, 120, 1_000_000, 10_000_000])
def test_a_header_wider_than_the_contract_is_refused_before_anything_else(columns: int) -> None:
    """A header of many one-letter names was checked in quadratic time: 300,000 columns took 50 s of a
    worker. Now it is refused from its first kilobyte, so even 10 million columns (20 MB) cost
    microseconds; the bound below only says "not seconds" (the old code took hours for this)."""
    body = (",".join(["a"] * columns) + "\n" + "1,2\n" * 3).encode()
    started = time.perf_counter()
    [message] = problems(body)
    assert time.perf_counter() - started < 1.0
    expected = f"has {columns} columns, more than the contract's 7" if columns < 500 else "longer than 1,024 bytes"
    assert message.startswith("line 1 (the header): ") and expected in message
    assert ", ".join(FEATURE_NAMES) in message  # it says what the header should be


def test_a_header_of_the_contracts_columns_padded_or_quoted_is_still_read() -> None:
    names = list(reversed(FEATURE_NAMES))
    values = ",".join(str(GOOD[name]) for name in names) + "\n"
    expected = columnar.rows_from_csv(csv_body([GOOD]), 10)
    for header in (",".join(f'"{name}"' for name in names), ",".join(f"  {name} " for name in names)):
        np.testing.assert_array_equal(columnar.rows_from_csv((header + "\n" + values).encode(), 10), expected)
    assert problems(b"x" * 2_000 + b"\n1\n")[0].startswith("line 1 (the header): longer than 1,024 bytes")


def test_a_csv_body_over_the_row_limit_is_refused() -> None:
    assert problems(csv_body([GOOD] * 4), max_rows=3) == ["the CSV body has 4 rows; at most 3 are accepted"]


def test_csv_answers_read_back_as_the_same_doubles() -> None:
    values = np.random.default_rng(1).uniform(0, 1, 1_000)
    values[:3] = [0.0, 1.0, 1e-7]
    text = columnar.to_csv({"chance": values, "interval_low": values / 3}).decode()
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["chance", "interval_low"] and len(lines) == 1_001
    np.testing.assert_array_equal(np.array([float(line[0]) for line in lines[1:]]), values)
    np.testing.assert_array_equal(np.array([float(line[1]) for line in lines[1:]]), values / 3)
    assert columnar.to_csv({"chance": np.array([])}) == b"chance\n"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda width: st.lists(
            st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=width, max_size=width), min_size=1
        )
    )
)
def test_csv_answers_have_a_line_per_row_of_the_same_doubles(rows: list[list[float]]) -> None:
    matrix = np.array(rows, dtype=np.float64)
    names = [f"c{index}" for index in range(matrix.shape[1])]
    text = columnar.to_csv({name: matrix[:, index] for index, name in enumerate(names)}).decode()
    assert text.endswith("\n")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == names and len(lines) == len(rows) + 1
    read = np.array([[float(cell) for cell in line] for line in lines[1:]])
    np.testing.assert_array_equal(read.view(np.uint64), matrix.view(np.uint64))  # bit for bit, -0.0 too


def test_blocks_carry_rows_bit_for_bit() -> None:
    matrix = np.random.default_rng(2).uniform(0, 340, (1_000, len(FEATURES)))
    blocks = wire.Blocks.model_validate_json(wire.Blocks(blocks=[wire.raw(matrix)]).model_dump_json())
    np.testing.assert_array_equal(wire.from_raw(blocks.blocks[0], len(FEATURES)), matrix)
    np.testing.assert_array_equal(wire.unpack(wire.pack(matrix[:, 0])), matrix[:, 0])
    with pytest.raises(ValueError, match="not whole rows"):
        wire.from_raw(b"\0" * 12, len(FEATURES))


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        ([b"\0" * 12], "a block of 12 bytes is not one or more rows of 7"),
        ([b""], "a block of 0 bytes"),
        ([], "at least 1"),
    ],
)
def test_a_malformed_block_is_refused_by_its_own_validation_before_batching(blocks: list[bytes], problem: str) -> None:
    """The batch model service validates each call's blocks (a 400 naming the problem) before adaptive
    batching merges them: one bad call must not fail the calls merged with it."""
    body = json.dumps({"blocks": [base64.b64encode(block).decode() for block in blocks]})
    with pytest.raises(ValidationError, match=problem):
        wire.Blocks.model_validate_json(body)
