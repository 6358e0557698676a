"""Vectorised validation of raw rows against the feature contract, with pandera checks built from it.

The contract is defined once, in ``core/contract.py``: each ``FeatureSpec`` becomes a pandera column
whose checks carry the messages the API's pydantic validation gives for the same value, in the order
pydantic tries them, so ``rejects.csv`` reads the same whether a row was checked here or by the API.

A column of a million cells holds a few hundred distinct texts, and every rule of the contract is a
rule about one cell. So each column is dictionary-encoded (a code per row into its distinct texts;
``read_raw`` reads the contract's columns as categoricals, so the CSV reader has done it already),
each distinct text is parsed once with Python's ``float`` (as the row-by-row validation did), pandera
checks each column's distinct numbers, and every row takes its cells' results through their codes.
Reasons are written only for the rows that break a rule.
pandera is imported on first use: scheduling and no-op re-runs do not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.contract import FEATURES, TARGET, FeatureSpec

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
    """The spec's rules as pandera checks, first the one pydantic reports first. Each is a rule about one cell."""
    import pandera.pandas as pa

    # ignore_na=False: NaN ("nan" in the file) is not finite.
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
    """The contract as a pandera schema over parsed (float) columns: column checks only, no row-wise ones."""
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {spec.name: pa.Column(float, checks(spec), nullable=True) for spec in SPECS}, strict=True, ordered=True
    )


@dataclass(frozen=True)
class Column:
    """One raw column, dictionary-encoded, and what the contract says of each of its distinct texts."""

    spec: FeatureSpec
    codes: np.ndarray  # per row: which distinct text the cell holds
    texts: np.ndarray  # the distinct texts (None stands for cells that are no text at all)
    values: np.ndarray  # per distinct text: its number (NaN when it is not one)
    problems: np.ndarray  # per distinct text: "name: why (got 'text')", or "" when it keeps the contract
    blank: np.ndarray  # per distinct text: is it blank (a row lists its blanks first)


def encode(cells: pd.Series, spec: FeatureSpec) -> Column:
    """The column's codes, and each distinct text parsed: blank, not a number, or a number (checked later)."""
    if isinstance(cells.dtype, pd.CategoricalDtype):  # as read_raw reads it: the codes are there
        codes, texts = cells.cat.codes.to_numpy(), np.asarray(cells.cat.categories, dtype=object)
    else:
        codes, uniques = pd.factorize(cells)
        texts = np.asarray(uniques, dtype=object)
    if len(codes) and codes.min() < 0:  # cells that are no text at all (NaN in a frame built in memory)
        codes = np.where(codes < 0, len(texts), codes)
        texts = np.array([*texts, None], dtype=object)
    values = np.full(len(texts), np.nan)
    problems = np.full(len(texts), "", dtype=object)
    blank = np.zeros(len(texts), dtype=bool)
    not_a_number = NOT_AN_INTEGER if spec.integer else NOT_A_NUMBER
    for code, text in enumerate(texts):
        if not isinstance(text, str) or text.strip() == "":
            blank[code], problems[code] = True, f"{spec.name}: {MISSING}"
            continue
        try:
            values[code] = float(text)
        except ValueError:
            problems[code] = f"{spec.name}: {not_a_number} (got {text!r})"
    return Column(spec, codes, texts, values, problems, blank)


def first_broken_rules(numbers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For each column's distinct numbers, the message of the first rule each breaks ("" if none).

    pandera's lazy validation reports every failing cell with its check; each cell keeps its first.
    """
    from pandera.errors import SchemaErrors

    longest = max((len(values) for values in numbers.values()), default=0)
    # Columns of unequal length: each repeated to the longest. A repeat fails as its original does (no
    # new kind of failure for pandera to report: NaN padding tripled its time) and is dropped below.
    frame = pd.DataFrame({name: np.resize(values, longest) for name, values in numbers.items()})
    broken = {name: np.full(len(values), "", dtype=object) for name, values in numbers.items()}
    try:
        schema().validate(frame, lazy=True, inplace=True)
    except SchemaErrors as exc:
        failures = exc.failure_cases
    else:
        return broken
    # A failure of the frame itself, or a check that raised (no row index): a bug here, never the user's data.
    unexpected = failures[(failures["schema_context"] != "Column") | failures["index"].isna()]
    if not unexpected.empty:
        cases = unexpected[["column", "check", "failure_case"]].drop_duplicates().to_dict("records")
        raise RuntimeError(f"the contract schema could not check the parsed values: {cases}")
    first = failures.sort_values("check_number", kind="stable").drop_duplicates(["index", "column"])
    for name, at, message in zip(first["column"], first["index"].astype(np.int64), first["check"], strict=True):
        if at < len(broken[name]):  # not a repeat
            broken[name][at] = message
    return broken


@dataclass(frozen=True)
class Checked:
    """Every row checked: which rows break the contract and why, and the numbers of the others."""

    lines: np.ndarray  # per row: its line (the raw frame's index)
    columns: tuple[Column, ...]
    rejected: np.ndarray  # per row: does it break the contract
    reasons: list[str]  # one per rejected row, in row order

    def numbers(self, rows: np.ndarray) -> pd.DataFrame:
        """The numbers of ``rows`` (positions), typed as the contract says (int or float), indexed by line."""
        return pd.DataFrame(
            {
                column.spec.name: column.values[column.codes[rows]].astype(np.int64 if column.spec.integer else float)
                for column in self.columns
            },
            index=pd.Index(self.lines[rows], name="line"),
        )

    def repeats(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``rows`` (positions, all keeping the contract) repeat an earlier one's numbers, and that one.

        Returns (repeating rows, the first row of equal numbers for each), both positions.
        """
        # One key per row, equal for rows of equal numbers: each column's code for its number, combined.
        key, size = np.zeros(len(self.lines), dtype=np.int64), 1
        for column in self.columns:
            same, distinct = pd.factorize(column.values)  # "3" and "3.0", "0" and "-0" are one number
            if size * len(distinct) >= 2**62:  # renumber the keys so far before they overflow
                key, size = pd.factorize(key)[0], len(key)
            key, size = key * len(distinct) + same[column.codes], size * len(distinct)
        count = len(rows)
        if size * count >= 2**62:
            key = pd.factorize(key)[0]
        # Sorted, key x count + position puts equal rows together, the earliest first (sorting took a
        # third of the time of a hash table of a million keys).
        group, position = np.divmod(np.sort(key[rows] * count + np.arange(count)), max(count, 1))
        first = np.concatenate([[True], group[1:] != group[:-1]])[:count]  # the earliest row of its group
        earliest = position[first][np.cumsum(first) - 1]  # per sorted row: the earliest row of its group
        later = np.argsort(position[~first])  # the repeats, in row order
        return rows[position[~first][later]], rows[earliest[~first][later]]


def check(raw: pd.DataFrame) -> Checked:
    """Check every row of ``raw`` (text cells, the contract's columns) against the contract.

    A cell gets one reason: blank or not a number if it is, else the first rule it breaks. Blanks come
    first in a row's reasons, then the rest in column order, as the row-by-row validation gave them.
    """
    columns = tuple(encode(raw[spec.name], spec) for spec in SPECS)
    parsed = [np.flatnonzero(column.problems == "") for column in columns]  # the texts that are numbers
    numbers = {column.spec.name: column.values[at] for column, at in zip(columns, parsed, strict=True)}
    broken = first_broken_rules(numbers)
    for column, at in zip(columns, parsed, strict=True):  # their problems: the first rule each breaks
        for code, message in zip(at, broken[column.spec.name], strict=True):
            if message:
                column.problems[code] = f"{column.spec.name}: {message} (got {column.texts[code]!r})"
    rejected = np.zeros(len(raw), dtype=bool)
    for column in columns:
        rejected |= (column.problems != "")[column.codes]
    return Checked(raw.index.to_numpy(), columns, rejected, reasons(columns, np.flatnonzero(rejected)))


def reasons(columns: tuple[Column, ...], rows: np.ndarray) -> list[str]:
    """Why each of ``rows`` (positions) breaks the contract: its blanks first, then the rest in column order."""
    problems = np.stack([column.problems[column.codes[rows]] for column in columns], axis=1)
    blank = np.stack([column.blank[column.codes[rows]] for column in columns], axis=1)
    broken = problems != ""
    texts = problems[np.arange(len(rows)), broken.argmax(axis=1)]  # most rows have one problem: it is the reason
    for row in np.flatnonzero(broken.sum(axis=1) > 1):
        cells = problems[row]
        texts[row] = "; ".join([*cells[blank[row]], *cells[broken[row] & ~blank[row]]])
    return texts.tolist()
