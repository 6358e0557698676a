"""PrepareData: read the raw CSV, validate every row against the feature contract, split."""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pandas as pd

from core.contract import FEATURES, TARGET
from pipeline.errors import DataError
from pipeline.reference import DEFAULT_REFERENCE, REFERENCE_FILE, overlap, without_reference
from pipeline.task import UNREADABLE, PipelineTask

COLUMNS = tuple(spec.name for spec in (*FEATURES, TARGET))
DROPPED = ("serial_no",)
TRAIN_FILE, TEST_FILE, REJECTS_FILE = "train.csv", "test.csv", "rejects.csv"
_SHOWN_ROWS = 10  # how many offending rows an error message names before summarising
# A cell starting with one of these is a formula to spreadsheet programs (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
logger = logging.getLogger(__name__)


def normalise_column(name: str) -> str:
    """'Chance of Admit ' -> 'chance_of_admit', 'Serial No.' -> 'serial_no'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def read_raw(path: Path) -> pd.DataFrame:
    """The raw CSV as text cells with normalised column names; the line number is the index.

    The contract's columns are categoricals (each distinct text once, a code per cell): the CSV reader
    finds each column's distinct texts as it reads, and validation parses and checks each one once
    (``pipeline/validation.py``). The cells are the file's texts either way.
    """
    if not path.is_file():
        raise DataError(f"raw data file {path} does not exist or is not a file")
    try:
        if path.stat().st_size == 0:
            raise DataError(f"raw data file {path} is empty")
        header = [str(name) for name in _read_cells(path, nrows=1).iloc[0]]
        check_header(header, path)
        kinds = {at: "category" if normalise_column(name) in COLUMNS else str for at, name in enumerate(header)}
        cells = _read_cells(path, dtype=kinds)
    except UnicodeDecodeError as exc:
        raise DataError(f"raw data file {path} is not a UTF-8 CSV file (byte {exc.start} is not text)") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise DataError(f"raw data file {path} is not a readable CSV file: {exc}".strip()) from exc
    except OSError as exc:  # no read permission, a vanished file, an I/O error
        raise DataError(f"raw data file {path} cannot be read: {exc.strerror or exc}") from exc
    cells = cells.set_axis([normalise_column(name) for name in header], axis="columns")
    missing = [spec.raw_name for spec in (*FEATURES, TARGET) if spec.name not in cells.columns]
    if missing:
        raise DataError(f"raw data file {path} lacks column(s): {', '.join(missing)}")
    if len(cells) == 1:
        raise DataError(f"raw data file {path} has a header but no rows")
    frame = pd.DataFrame({name: _below_header(cells[name]) for name in COLUMNS})
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")  # line 1 is the header
    return frame


def _read_cells(path: Path, **options: Any) -> pd.DataFrame:
    """The CSV's cells as text, the header a row like the others.

    ``header=None``: pandas would rename a repeated name ("GRE Score.1") and hide the clash. It also
    keeps categoricals' categories text: pandas turns them into numbers when every one reads as a
    number ("4.50" and "4.5" would both become 4.5), and a contract column's header never does (its
    name has letters). ``low_memory=False``: one block; a chunked read merges the chunks' categories
    afterwards, ~0.25 s more at a million rows.
    """
    options.setdefault("dtype", str)
    return pd.read_csv(
        path, header=None, keep_default_na=False, skipinitialspace=True, encoding="utf-8", low_memory=False, **options
    )


def _below_header(cells: pd.Series) -> pd.Series:
    """A categorical column's rows without its header, and without the header among its categories
    (unless a row repeats it): ``astype(float)`` then works as on text columns."""
    codes = cells.cat.codes.to_numpy()
    rows = cells.iloc[1:]
    return rows if (codes[1:] == codes[0]).any() else rows.cat.remove_categories([cells.iloc[0]])


def check_header(header: list[str], path: Path) -> None:
    """Fail when two columns read as the same name: one would be validated and the other trained on."""
    positions: dict[str, list[int]] = defaultdict(list)
    for position, name in enumerate(header, start=1):
        positions[normalise_column(name)].append(position)
    clashes = [
        " and ".join(f"column {at} ({header[at - 1]!r})" for at in ats) + f" both read as {name!r}"
        for name, ats in positions.items()
        if len(ats) > 1
    ]
    if clashes:
        raise DataError(
            f"raw data file {path} has an ambiguous header: {'; '.join(clashes)}; keep one column of each name"
        )


def validate(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (valid typed rows, rejected raw rows with a ``reason`` column).

    Vectorised (``pipeline/validation.py``): a million rows take about 0.2 s, where row by row through
    pydantic took 71 s. A row equal to an earlier valid one is rejected as a duplicate of it.
    """
    from pipeline.validation import check

    checked = check(raw)
    repeat, first = checked.repeats(np.flatnonzero(~checked.rejected))
    keep = ~checked.rejected
    keep[repeat] = False
    valid = checked.numbers(np.flatnonzero(keep))
    duplicates = [f"duplicate of line {line}" for line in checked.lines[first]]
    rows = np.concatenate([np.flatnonzero(checked.rejected), repeat])
    order = np.argsort(rows, kind="stable")
    reasons = np.array([*checked.reasons, *duplicates], dtype=object)
    rejects = raw.iloc[rows[order]].assign(reason=reasons[order])
    return valid, rejects


def neutralise(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula, made inert and still readable: '=1+1 -> \'=1+1."""
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(_FORMULA_START) else cell


def write_rejects(rejects: pd.DataFrame, path: Path) -> None:
    """rejects.csv: people open it in spreadsheet programs, so no cell may be a live formula."""
    rejects.map(neutralise).to_csv(path)


def check_reject_share(rejects: pd.DataFrame, total: int, max_share: float, path: Path) -> None:
    """Fail, naming the rows, when more than ``max_share`` of the rows were rejected."""
    share = len(rejects) / total if total else 1.0
    if total and share <= max_share:
        return
    shown = "; ".join(f"line {line}: {reason}" for line, reason in rejects["reason"].head(_SHOWN_ROWS).items())
    more = f" (and {len(rejects) - _SHOWN_ROWS} more)" if len(rejects) > _SHOWN_ROWS else ""
    raise DataError(
        f"{len(rejects)} of {total} rows in {path} break the feature contract ({share:.1%}, "
        f"allowed {max_share:.1%}): {shown}{more}"
    )


def split(valid: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split  # heavy: see pipeline/__init__.py

    train, test = train_test_split(valid, test_size=test_size, random_state=seed, shuffle=True)
    return train.sort_index(), test.sort_index()


def prepare(
    path: Path,
    folder: Path,
    test_size: float,
    max_reject_share: float,
    seed: int,
    kept_rejects: Path,
    reference_path: Path = Path(DEFAULT_REFERENCE),
) -> dict[str, Any]:
    """Read, validate and split ``path`` into ``folder``, without the reference applicants (kept out of
    both splits and written beside them); return counts for the manifest.

    When too many rows are rejected the rejects are kept at ``kept_rejects`` (the output folder
    is discarded on failure) so the user can see every reason.
    """
    reference = load_reference(reference_path)
    raw = read_raw(path)
    valid, rejects = validate(raw)
    write_rejects(rejects, folder / REJECTS_FILE)
    try:
        check_reject_share(rejects, len(raw), max_reject_share, path)
    except DataError as exc:
        write_rejects(rejects, kept_rejects)
        raise DataError(f"{exc}. Every rejected row and its reason: {kept_rejects}") from None
    usable, held_for_reference = without_reference(valid, reference)
    if len(usable) < 10:
        raise DataError(
            f"raw data file {path} has only {len(usable)} valid rows that are not reference applicants; "
            "at least 10 are needed"
        )
    train, test = split(usable, test_size, seed)
    if overlap(train, reference):  # by construction 0; checked because the gate's honesty rests on it
        raise DataError("a reference applicant reached the training split; this is a bug, please report it")
    for frame, name in ((train, TRAIN_FILE), (test, TEST_FILE), (reference, REFERENCE_FILE)):
        frame.to_csv(folder / name, float_format="%.10g")
    rows = {"raw": len(raw), "valid": len(valid), "rejected": len(rejects), "train": len(train), "test": len(test)}
    return {"rows": {**rows, "held_for_reference": held_for_reference, "reference": len(reference)}}


def load_split(folder: Path, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and target of the train or test split written by :func:`prepare`."""
    frame = pd.read_csv(folder / name, index_col="line")
    return frame[[spec.name for spec in FEATURES]], frame[TARGET.name].to_numpy()


class PrepareData(PipelineTask):
    """Validated, split data: train.csv, test.csv, rejects.csv (with a reason per row) and reference.csv
    (the gate's reference applicants, kept out of both splits)."""

    test_size = luigi.FloatParameter(default=0.2, description="share of valid rows held out for testing")
    max_reject_share = luigi.FloatParameter(
        default=0.05, description="fail when more than this share of raw rows is rejected"
    )

    def produce(self, folder: Path) -> dict[str, Any]:
        if self.data_sha256 == UNREADABLE:
            read_raw(Path(self.raw_data))  # says why (missing, a folder, ...) when it can
            raise DataError(f"raw data file {self.raw_data} cannot be read (no permission?)")
        kept_rejects = folder.parent / f"{self.task_id}.rejects.csv"
        details = prepare(
            Path(self.raw_data),
            folder,
            self.test_size,
            self.max_reject_share,
            self.seed,
            kept_rejects,
            Path(self.reference_data),
        )
        rows = details["rows"]
        if rows["rejected"]:  # within the allowed share, but never silently
            logger.warning(
                "%d of %d rows of %s break the feature contract and are left out; the reasons: %s",
                rows["rejected"], rows["raw"], self.raw_data, Path(self.output().path) / REJECTS_FILE,
            )  # fmt: skip
        return details


def load_reference(path: Path) -> pd.DataFrame:
    """The reference rows, typed and validated like raw data; any invalid row is an error (it is ours)."""
    if not path.is_file():
        raise DataError(f"reference file {path} does not exist; the promotion gate needs it (--reference-data)")
    valid, rejects = validate(read_raw(path))
    if len(rejects):
        line, reason = next(iter(rejects["reason"].items()))
        raise DataError(f"reference file {path} has {len(rejects)} invalid row(s), e.g. line {line}: {reason}")
    if len(valid) < 20:
        raise DataError(f"reference file {path} has {len(valid)} rows; the gate needs at least 20 to judge on")
    return valid
