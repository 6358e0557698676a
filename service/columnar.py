"""Batch bodies read and written column by column: CSV in and out, and a JSON fast path.

A batch is a table, and checking it one row object at a time (BentoML's pydantic validation of a
``{"applicants": [...]}`` body) cost most of a /predict_batch worker's time (py-spy). Here a body is
parsed by a library made for it (pandas' C CSV reader, orjson) into one array per column, and each
rule of the contract (core/contract.py FEATURES: type, bounds, step) is checked on a whole column
at once.

- CSV: a header naming the seven contract columns (any order), then one applicant per line. Every
  problem is reported by line and column (the header is line 1): the fast reader only says whether
  the body is valid; when it is not, :func:`csv_problems` reads it again, cell by cell, to say where.
- JSON: :func:`rows_from_json` accepts only bodies it can prove valid, by the same rules; anything
  else (a problem, or a shape it does not know) returns None and goes through BentoML's validation,
  which names every problem. So the JSON contract is still the pydantic one, and it is checked once.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pandas as pd

from core.contract import FEATURE_NAMES, FEATURES, FeatureSpec
from service.errors import InvalidInputError
from service.offload import Abandon

CSV_MEDIA_TYPE = "text/csv"
SHOWN_PROBLEMS = 10
# A header names the seven columns: far less than this, even padded with spaces or quoted.
MAX_HEADER_BYTES = 1024
_BOM = b"\xef\xbb\xbf"  # spreadsheets often start UTF-8 files with one
_NUMBER_BYTES = b'0123456789.,+-eE "\r\n'  # all a CSV body of valid numbers holds after its header
_COMMA, _NEWLINE = ord(","), ord("\n")
_CHECK_EVERY = 1024  # lines between two checks whether the client still waits (~1 ms of reading)
_FLOAT_TYPES = frozenset({int, float})
_INT_TYPES = frozenset({int})


def out_of_contract(spec: FeatureSpec, values: np.ndarray) -> np.ndarray:
    """A mask of the values that break ``spec``'s bounds, step or integrality (NaN breaks every bound)."""
    bad = ~((values >= spec.minimum) & (values <= spec.maximum))
    step = 1 if spec.integer else spec.step
    if step is not None:
        steps = values / step  # exact for the contract's steps (1 and 0.5); 3x faster than np.fmod
        with np.errstate(invalid="ignore"):  # inf or NaN: already out of bounds
            bad |= steps != np.rint(steps)
    return bad


def rows_from_json(body: bytes, max_rows: int) -> np.ndarray | None:
    """``{"applicants": [...]}`` as an (n, 7) array when every row is valid by the contract's strict
    rules (integers for integer features, no booleans or strings, no extra or missing fields); None
    for anything else, which BentoML's validation then explains."""
    applicants = _json_applicants(body, max_rows)
    if applicants is None:
        return None
    matrix = np.empty((len(applicants), len(FEATURES)), dtype=np.float64)
    for index, spec in enumerate(FEATURES):
        try:
            values = [applicant[spec.name] for applicant in applicants]
            if not set(map(type, values)) <= (_INT_TYPES if spec.integer else _FLOAT_TYPES):
                return None  # bool is not int here (type, not isinstance), as in strict pydantic
            matrix[:, index] = values
        except (KeyError, OverflowError):  # a missing field; an integer too big for a double
            return None
        if out_of_contract(spec, matrix[:, index]).any():
            return None
    return matrix


def _json_applicants(body: bytes, max_rows: int) -> list[dict[str, Any]] | None:
    """The body's list of 1 .. ``max_rows`` objects of seven fields each, if it is that."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    applicants = data.get("applicants") if type(data) is dict and len(data) == 1 else None
    if type(applicants) is not list or not 1 <= len(applicants) <= max_rows:
        return None
    width = len(FEATURES)
    if any(type(applicant) is not dict or len(applicant) != width for applicant in applicants):
        return None
    return applicants


def rows_from_csv(body: bytes, max_rows: int, abandon: Abandon | None = None) -> np.ndarray:
    """A CSV body as an (n, 7) array in contract order, or :class:`InvalidInputError` listing the
    first problems by line and column. ``abandon`` stops the slow reading of an invalid body."""
    text = body[len(_BOM) :] if body.startswith(_BOM) else body
    names = _header(text)
    if text[text.find(b"\n") + 1 :].translate(None, _NUMBER_BYTES):  # e.g. "true", which pandas reads as 1
        raise _invalid(text, "a value that is not a number", abandon)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pandas only warns when a line has more values than the header
            table = pd.read_csv(
                io.BytesIO(text),
                header=0,
                names=names,
                dtype="float64",  # integer columns too: then checked for whole numbers, as JSON's are
                engine="c",
                na_filter=False,  # an empty cell is an error, not a NaN
                index_col=False,  # never take a first column as the index
                encoding="utf-8",
            )
    except (ValueError, Warning) as exc:  # pandas' ParserError is a ValueError
        raise _invalid(text, str(exc), abandon) from None
    if len(table) == 0:
        raise InvalidInputError("the CSV body has a header but no rows", field="body")
    if len(table) > max_rows:
        raise InvalidInputError(f"the CSV body has {len(table):,} rows; at most {max_rows:,} are accepted")
    matrix = np.empty((len(table), len(FEATURES)), dtype=np.float64)
    for index, spec in enumerate(FEATURES):
        column = table[spec.name].to_numpy()  # checked before it is copied: 3x faster than in the matrix
        if out_of_contract(spec, column).any():  # NaN too: a line with fewer values than the header
            raise _invalid(text, f"column {spec.name} has a value outside the contract", abandon)
        matrix[:, index] = column
    return matrix


def _header(text: bytes) -> list[str]:
    """The header's column names (stripped), which must be the contract's, each once, in any order.

    Linear in the header, and refused before anything else when it is longer than a header of the
    contract can be: a 1,000,000-column header once cost minutes of a worker (a quadratic check)."""
    end = text.find(b"\n", 0, MAX_HEADER_BYTES + 1)
    if end < 0 and len(text) > MAX_HEADER_BYTES:
        raise _bad_header(f"longer than {MAX_HEADER_BYTES:,} bytes")
    raw = text if end < 0 else text[:end]
    if raw.count(b",") >= len(FEATURE_NAMES):  # a quoted comma is no contract name either
        raise _bad_header(f"has {raw.count(b',') + 1:,} columns, more than the contract's {len(FEATURE_NAMES)}")
    line = raw.decode("utf-8", "replace").strip()
    if not line:
        raise InvalidInputError(f"the CSV body must start with a header line: {','.join(FEATURE_NAMES)}")
    try:
        names = [name.strip() for name in next(csv.reader([line]))]
    except csv.Error as exc:
        raise InvalidInputError(f"line 1 (the header) is not CSV: {exc}", field="header") from None
    missing = [name for name in FEATURE_NAMES if name not in names]
    unknown = [name[:40] for name in names if name not in FEATURE_NAMES]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if missing or unknown or repeated:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
        parts.append(f"repeated {', '.join(repeated)}" if repeated else "")
        raise _bad_header("; ".join(part for part in parts if part))
    return names


def _bad_header(problem: str) -> InvalidInputError:
    expected = ", ".join(FEATURE_NAMES)
    return InvalidInputError(f"line 1 (the header): {problem}; the columns are {expected}", field="header")


def _invalid(text: bytes, fallback: str, abandon: Abandon | None) -> InvalidInputError:
    problems, count = csv_problems(text, abandon)
    if not count:  # the reader refused something the cell rules accept: say what it said
        return InvalidInputError(f"the CSV body could not be read: {fallback}")
    shown = f"; the first {len(problems)} are listed" if count > len(problems) else ""
    return InvalidInputError(f"invalid CSV body: {count} problem(s){shown}", problems=problems, problem_count=count)


def csv_problems(text: bytes, abandon: Abandon | None = None) -> tuple[list[str], int]:
    """The first :data:`SHOWN_PROBLEMS` problems of a CSV body, each naming its line and column, and
    how many there are. Slow (a cell at a time: seconds for a 25 MB job), so only used once a body is
    known to be invalid, and stopped by ``abandon`` when its client has gone."""
    problems: list[str] = []
    count = 0
    for problem in _cell_problems(text, abandon):
        count += 1
        if len(problems) < SHOWN_PROBLEMS:
            problems.append(problem)
    return problems, count


def _cell_problems(text: bytes, abandon: Abandon | None) -> Iterator[str]:
    reader = csv.reader(io.StringIO(text.decode("utf-8", "replace"), newline=""))
    header = [name.strip() for name in next(reader, [])]
    specs = {spec.name: spec for spec in FEATURES}
    for read in itertools.count(1):
        if abandon is not None and read % _CHECK_EVERY == 0:
            abandon.check()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a quote left open: the rest cannot be read
            yield f"line {reader.line_num}: not CSV ({exc})"
            return
        if not cells:
            continue  # an empty line
        line = reader.line_num
        if len(cells) != len(header):
            yield f"line {line}: {len(cells)} value(s), but the header has {len(header)} columns"
            continue
        for name, cell in zip(header, cells, strict=True):
            reason = _cell_problem(specs[name], cell)
            if reason:
                yield f"line {line}, column {name}: {reason}"


def _cell_problem(spec: FeatureSpec, cell: str) -> str | None:
    """Why one cell breaks the contract, or None: the rules of :func:`out_of_contract`, one value."""
    shown = repr(cell[:40])
    try:
        value = float(cell)
    except ValueError:
        return f"{shown} is not {'an integer' if spec.integer else 'a number'}"
    if not (spec.minimum <= value <= spec.maximum) or math.isnan(value):
        return f"{shown} is not between {spec.minimum:g} and {spec.maximum:g}"
    if spec.integer and not value.is_integer():
        return f"{shown} is not an integer"
    if spec.step is not None and (value / spec.step) != round(value / spec.step):
        return f"{shown} is not a multiple of {spec.step:g}"
    return None


def to_csv(columns: dict[str, np.ndarray]) -> bytes:
    """Float columns as CSV with a header line. Numbers are written by orjson (as in JSON answers: the
    shortest text that reads back as the same double), a row per line."""
    names = list(columns)
    matrix = np.column_stack([np.asarray(values, dtype=np.float64) for values in columns.values()])
    header = (",".join(names) + "\n").encode()
    if len(matrix) == 0:
        return header
    # orjson writes the values row after row as "[a,b,c,d,...]"; without the brackets, and with every
    # k-th comma a line break, that is the CSV body (no number contains a comma). Found and replaced
    # as an array of bytes: 2x faster than orjson's nested lists with bytes.replace.
    text = np.frombuffer(orjson.dumps(matrix.ravel(), option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
    body = text[1:].copy()
    body[-1] = _NEWLINE  # the closing bracket
    commas = np.flatnonzero(body == _COMMA)
    body[commas[len(names) - 1 :: len(names)]] = _NEWLINE
    return header + body.tobytes()


def with_ids(csv: bytes, request_id: str) -> bytes:
    """``csv`` (from :func:`to_csv`) with a first column ``prediction_id``: ``<request_id>-<row>``."""
    header, _, body = csv.partition(b"\n")
    lines = body.split(b"\n")[:-1]  # the body ends with a line break
    prefix = request_id.encode()
    rows = b"".join(b"%s-%d,%s\n" % (prefix, row, line) for row, line in enumerate(lines))
    return b"prediction_id," + header + b"\n" + rows
