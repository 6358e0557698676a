"""Vectorised validation of raw rows against the feature contract, with pandera checks built from it.

The contract is defined once, in ``service/contract.py``: each ``FeatureSpec`` becomes a pandera column
whose checks carry the messages the API's pydantic validation gives for the same value, in the order
pydantic tries them, so ``rejects.csv`` reads the same whether a row was checked here or by the API.
pandera is imported on first use: scheduling and no-op re-runs do not pay for it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from service.contract import FEATURES, TARGET, FeatureSpec

if TYPE_CHECKING:
    import pandera.pandas as pa

SPECS: tuple[FeatureSpec, ...] = (*FEATURES, TARGET)
MISSING = "missing value"
NOT_A_NUMBER = "Input should be a valid number, unable to parse string as a number"
NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"
# pydantic's multiple_of tolerance, measured: 4.5 + 1e-9 passes as a multiple of 0.5, 4.5 + 1.1e-9 does not.
_MULTIPLE_TOLERANCE = 1e-9


def _multiple_of(step: float):  # type: ignore[no-untyped-def]
    def check(values: pd.Series) -> pd.Series:
        quotient = values / step
        with np.errstate(invalid="ignore"):  # inf and NaN fail the finite check; no warning here
            return np.abs(quotient - np.rint(quotient)) * step <= _MULTIPLE_TOLERANCE

    return check


def _whole(values: pd.Series) -> pd.Series:
    return values == np.floor(values)


def checks(spec: FeatureSpec) -> list[pa.Check]:
    """The spec's rules as pandera checks, first the one pydantic reports first."""
    import pandera.pandas as pa

    # ignore_na=False: NaN ("nan" in the file) is not finite; cells that are not numbers at all are
    # reported by parse() and their check failures dropped.
    rules = [pa.Check(np.isfinite, ignore_na=False, error="Input should be a finite number")]
    if spec.integer:
        rules.append(pa.Check(_whole, error="Input should be a valid integer, got a number with a fractional part"))
    if spec.step is not None:
        rules.append(pa.Check(_multiple_of(spec.step), error=f"Input should be a multiple of {spec.step}"))
    rules.append(pa.Check.le(spec.maximum, error=f"Input should be less than or equal to {spec.maximum}"))
    rules.append(pa.Check.ge(spec.minimum, error=f"Input should be greater than or equal to {spec.minimum}"))
    return rules


@cache
def schema() -> pa.DataFrameSchema:
    """The contract as a pandera schema over the parsed (float) columns."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {spec.name: pa.Column(float, checks(spec), nullable=True) for spec in SPECS}, strict=True, ordered=True
    )


def parse(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Text cells as floats (NaN where not a number), and the cells that are blank or not a number.

    Each distinct text is parsed once, with Python's ``float`` (as the row-by-row validation did): a
    column of a million cells has a few hundred distinct values.
    """
    numbers, problems = {}, []
    for position, spec in enumerate(SPECS):
        codes, texts = pd.factorize(raw[spec.name].to_numpy(dtype=object))
        values = np.full(len(texts), np.nan)
        failed: dict[int, bool] = {}  # code -> is it blank
        for code, text in enumerate(texts):
            try:
                values[code] = float(text)
            except ValueError:
                failed[code] = text.strip() == ""
        numbers[spec.name] = values[codes]
        if failed:
            rows = np.flatnonzero(np.isin(codes, list(failed)))
            blank = np.array([failed[code] for code in codes[rows]], dtype=bool)
            message = NOT_AN_INTEGER if spec.integer else NOT_A_NUMBER
            problems.append(_problems(raw.index[rows], position, spec.name, np.where(blank, MISSING, message), blank))
    return pd.DataFrame(numbers, index=raw.index), _concat(problems)


def contract_problems(numbers: pd.DataFrame) -> pd.DataFrame:
    """The first broken rule of every cell that breaks one (pandera's lazy validation collects them all)."""
    from pandera.errors import SchemaErrors

    try:
        schema().validate(numbers, lazy=True, inplace=True)  # checks only: no copy of a million rows
    except SchemaErrors as exc:
        failures = exc.failure_cases
    else:
        return _concat([])
    # A failure of the frame itself, or a check that raised (no row index): a bug here, never the user's data.
    unexpected = failures[(failures["schema_context"] != "Column") | failures["index"].isna()]
    if not unexpected.empty:
        cases = unexpected[["column", "check", "failure_case"]].drop_duplicates().to_dict("records")
        raise RuntimeError(f"the contract schema could not check the parsed rows: {cases}")
    first = failures.sort_values("check_number").drop_duplicates(["index", "column"])
    position = {spec.name: at for at, spec in enumerate(SPECS)}
    return pd.DataFrame(
        {
            "line": first["index"].to_numpy(),
            "position": first["column"].map(position).to_numpy(),
            "column": first["column"].to_numpy(),
            "message": first["check"].to_numpy(),
            "missing": False,
        }
    )


def reasons(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Parsed rows, and why each rejected one breaks the contract ('; '-joined, by line).

    A cell gets one reason: blank or not a number if it is, else the first rule it breaks. Blanks come
    first in a row's reasons, then the rest in column order, as the row-by-row validation gave them.
    """
    numbers, unparsed = parse(raw)
    broken = contract_problems(numbers)
    cells = pd.MultiIndex.from_frame(unparsed[["line", "column"]])
    broken = broken[~pd.MultiIndex.from_frame(broken[["line", "column"]]).isin(cells)]
    found = pd.concat([unparsed, broken], ignore_index=True)
    if found.empty:
        return numbers, pd.Series([], index=pd.Index([], name="line"), dtype=object, name="reason")
    found["text"] = [
        f"{column}: {message}" if missing else f"{column}: {message} (got {value!r})"
        for column, message, missing, value in zip(
            found["column"], found["message"], found["missing"], _cells(raw, found), strict=True
        )
    ]
    found = found.sort_values(["line", "missing", "position"], ascending=[True, False, True], kind="stable")
    several = found["line"].duplicated(keep=False)  # most rejected rows have one problem: join only the others
    joined = found[several].groupby("line", sort=False)["text"].agg("; ".join)
    single = found[~several].set_index("line")["text"]
    return numbers, pd.concat([single, joined]).sort_index().rename("reason")


def _cells(raw: pd.DataFrame, found: pd.DataFrame) -> np.ndarray:
    """The raw text of each (line, column) in ``found``."""
    cells = np.empty(len(found), dtype=object)
    rows = raw.index.get_indexer(found["line"])
    for column in found["column"].unique():
        at = (found["column"] == column).to_numpy()
        cells[at] = raw[column].to_numpy(dtype=object)[rows[at]]
    return cells


def _problems(lines: pd.Index, position: int, column: str, message: object, missing: object) -> pd.DataFrame:
    return pd.DataFrame({"line": lines, "position": position, "column": column, "message": message, "missing": missing})


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    empty = _problems(pd.Index([], dtype=np.int64), 0, "", "", False)
    return pd.concat([empty, *frames], ignore_index=True) if frames else empty
