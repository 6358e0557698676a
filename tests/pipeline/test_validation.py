"""The vectorised validation (pandera, built from core/contract.py) against the API's pydantic models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, create_model

from core.contract import TARGET, FeatureSpec
from pipeline.data import COLUMNS, validate
from pipeline.validation import SPECS, Checked, Column, schema
from service.schemas import Applicant


def texts(spec: FeatureSpec) -> list[str]:
    """Both bounds and just past them, off-step and fractional values, and text that is blank, not a
    number, not finite or a formula. Huge integers are left out: pydantic words them differently
    ("exceeded maximum size"), the pipeline says they are above the maximum."""
    low, high = spec.minimum, spec.maximum
    near = [str(low), str(high), f"{low - 1}", f"{high + 0.5}", f"{(low + high) / 2:g}", f"{low + 0.25}", f"{high}.0"]
    return [*near, "", " ", "abc", "nan", "inf", "-inf", "=1+1", "1_0", "3.", "-0"]


TEXTS = {spec.name: texts(spec) for spec in SPECS}
# The API's applicant model with the label added: the row-by-row oracle the vectorised checks must agree with.
LabelledApplicant = create_model(  # type: ignore[call-overload]
    "LabelledApplicant", __base__=Applicant, **{TARGET.name: (TARGET.annotation(), ...)}
)


def pydantic_reasons(row: dict[str, str]) -> str:
    """What the row-by-row validation (the API's model, one row at a time) said about a raw row."""
    blanks = [name for name in COLUMNS if row[name].strip() == ""]  # in the file's column order
    problems = [f"{name}: missing value" for name in blanks]

    def number(text: str) -> float | str:
        try:
            return float(text)
        except ValueError:
            return text

    try:
        LabelledApplicant.model_validate({n: number(t) for n, t in row.items() if n not in blanks}, strict=False)
    except ValidationError as exc:
        named = [(str(e["loc"][0]), e["msg"]) for e in exc.errors()]
        problems += [f"{name}: {message} (got {row[name]!r})" for name, message in named if name not in blanks]
    return "; ".join(problems)


# Many rows per example: a validate() call has a fixed cost (pandera) of ~0.03 s, rows are nearly free.
rows = st.lists(
    st.fixed_dictionaries({name: st.sampled_from(TEXTS[name]) for name in COLUMNS}), min_size=1, max_size=300
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_reasons_are_those_of_the_api_model_row_by_row(cells: list[dict[str, str]]) -> None:
    raw = pd.DataFrame(cells, columns=list(COLUMNS), index=pd.RangeIndex(2, len(cells) + 2, name="line"))
    valid, rejects = validate(raw)
    # read_raw gives categoricals (the reader's codes are used as they are): the same answer.
    as_read = validate(raw.astype("category"))
    pd.testing.assert_frame_equal(as_read[0], valid)
    pd.testing.assert_series_equal(as_read[1]["reason"], rejects["reason"])
    expected = {line: pydantic_reasons(row) for line, row in zip(raw.index, cells, strict=True)}
    for line, reason in rejects["reason"].items():
        if reason.startswith("duplicate of line "):
            assert expected[line] == ""
        else:
            assert reason == expected[line]
    assert sorted(valid.index) == [
        line for line, reason in expected.items() if not reason and line not in rejects.index
    ]


def test_the_schema_is_the_contract() -> None:
    built = schema()
    assert list(built.columns) == list(COLUMNS)
    assert not built.checks  # only rules about one cell: validation checks each column's distinct values
    for spec in SPECS:
        errors = [check.error for check in built.columns[spec.name].checks]
        assert f"Input should be greater than or equal to {spec.minimum}" in errors
        assert f"Input should be less than or equal to {spec.maximum}" in errors
        assert (f"Input should be a multiple of {spec.step}" in errors) == (spec.step is not None)


def test_every_repeat_names_the_first_of_its_rows_equal_numbers_being_equal_rows() -> None:
    good = dict(zip(COLUMNS, ["300", "100", "3", "3", "3", "8.5", "1", "0.5"], strict=True))
    texts = [("300", "0.5"), ("310", "0.5"), ("300.0", "0.50"), ("300", "0.5"), ("310", ".5"), ("300", "0.6")]
    cells = [{**good, "gre_score": gre, "chance_of_admit": chance} for gre, chance in texts]
    _, rejects = validate(pd.DataFrame(cells, index=pd.RangeIndex(2, 8, name="line")))
    assert rejects["reason"].to_dict() == {4: "duplicate of line 2", 5: "duplicate of line 2", 6: "duplicate of line 3"}


def test_a_repeat_of_a_rejected_row_is_rejected_for_its_own_reason() -> None:
    cells = dict(zip(COLUMNS, ["250", "100", "3", "3", "3", "8.5", "1", "0.5"], strict=True))
    valid, rejects = validate(pd.DataFrame([cells, cells], index=pd.RangeIndex(2, 4, name="line")))
    assert valid.empty
    assert rejects["reason"].tolist() == ["gre_score: Input should be greater than or equal to 260 (got '250')"] * 2


def test_a_row_with_several_problems_lists_blanks_first_then_columns_in_order() -> None:
    cells = dict(zip(COLUMNS, ["250", "121", "", "4.2", "4.5", "9", "1", ""], strict=True))
    _, rejects = validate(pd.DataFrame([cells], index=pd.RangeIndex(2, 3, name="line")))
    assert rejects.loc[2, "reason"] == (
        "university_rating: missing value; chance_of_admit: missing value; "
        "gre_score: Input should be greater than or equal to 260 (got '250'); "
        "toefl_score: Input should be less than or equal to 120 (got '121'); "
        "sop: Input should be a multiple of 0.5 (got '4.2')"
    )


@pytest.mark.parametrize("text", ["nan", "inf"])
def test_not_finite_numbers_are_rejected(text: str) -> None:
    cells = dict(zip(COLUMNS, ["300", "100", "3", "3", "3", text, "1", "0.5"], strict=True))
    _, rejects = validate(pd.DataFrame([cells], index=pd.RangeIndex(2, 3, name="line")))
    assert rejects.loc[2, "reason"] == f"cgpa: Input should be a finite number (got {text!r})"


def test_a_cell_that_is_no_text_at_all_is_a_missing_value() -> None:
    cells = dict(zip(COLUMNS, ["300", None, "3", "3", "3", "8.5", "1", "0.5"], strict=True))
    _, rejects = validate(pd.DataFrame([cells], index=pd.RangeIndex(2, 3, name="line")))
    assert rejects.loc[2, "reason"] == "toefl_score: missing value"


@pytest.mark.parametrize("distinct", [3, 300])
def test_repeats_name_the_earliest_equal_row_as_pandas_does(distinct: int) -> None:
    """With 300 distinct numbers in each of 8 columns a row's key overflows 64 bits: it is renumbered on the way."""
    rng = np.random.default_rng(distinct)
    rows = 3000
    codes = rng.integers(distinct, size=(len(SPECS), rows))
    codes[:, -300:] = codes[:, rng.integers(rows - 300, size=300)]  # repeats, whatever the number of values
    columns = tuple(
        Column(spec, codes[at], np.array([]), np.arange(distinct) / 2, np.array([]), np.array([]))
        for at, spec in enumerate(SPECS)
    )
    candidates = np.flatnonzero(rng.random(rows) < 0.9)
    repeat, first = Checked(np.arange(rows), columns, np.zeros(rows, dtype=bool), []).repeats(candidates)
    frame = pd.DataFrame({spec.name: codes[at, candidates] for at, spec in enumerate(SPECS)}, index=candidates)
    expected = frame.duplicated()
    earliest = frame.index.to_series().groupby([frame[name] for name in frame.columns]).transform("min")
    assert repeat.tolist() == frame.index[expected].tolist()
    assert first.tolist() == earliest[expected].tolist()
    assert len(repeat) >= 200
