"""Bodies on the wire: JSON answers, and the blocks in which rows and chances travel between the API
and the batch model service (raw little-endian float64 values, base64 in a JSON string).

Rows go as :class:`Blocks`, whose base64 pydantic-core writes and reads (BentoML serialises a
dependency's input model with pydantic): 5x faster than Python's base64 module at 100,000 rows.

JSON answers are written with orjson, which writes numpy arrays directly (the standard library's
encoder took a fifth of a 10,000-row /predict_batch worker's time, py-spy). Floats come out as the
shortest text that reads back as the same double, as Python's own repr does.

BentoML's JSON for an array is one number per value, which both sides parse and format one at a
time: at 100,000 rows that hop cost more than the whole prediction. A block is one string whose
parsing is a copy, and it carries no code (unlike pickle, which the model services refuse:
service/middleware/guard.py). Values round-trip bit for bit, so a chance is the same whichever route made it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import numpy as np
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

VALUE = np.dtype("<f8")


ROW_WIDTH = 7  # values per row of a block: the contract's features (core/contract.py)


def _whole_rows(block: bytes) -> bytes:
    """Checked per call, before adaptive batching merges blocks: one caller's bad block must be its own
    400, not a failed batch (a 500) for every call merged with it."""
    if not block or len(block) % (VALUE.itemsize * ROW_WIDTH):
        raise ValueError(f"a block of {len(block)} bytes is not one or more rows of {ROW_WIDTH} float64 values")
    return block


class Blocks(BaseModel):
    """The batch model service's input: blocks of (n, 7) rows as raw bytes (see :func:`raw`)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    blocks: list[Annotated[bytes, AfterValidator(_whole_rows)]] = Field(min_length=1)


def raw(values: np.ndarray) -> bytes:
    """An array of floats as the raw bytes of a block (:func:`from_raw` reads them back)."""
    return np.ascontiguousarray(values, dtype=VALUE).tobytes()


def from_raw(block: bytes, width: int) -> np.ndarray:
    """Raw bytes of a block as an (n, width) read-only array."""
    if len(block) % (VALUE.itemsize * width):
        raise ValueError(f"a block of {len(block)} bytes is not whole rows of {width} float64 values")
    return np.frombuffer(block, dtype=VALUE).reshape(-1, width)


def pack(values: np.ndarray) -> str:
    """An array of floats as one block."""
    return base64.b64encode(np.ascontiguousarray(values, dtype=VALUE).tobytes()).decode("ascii")


def unpack(block: str, width: int = 1) -> np.ndarray:
    """A block as an (n, width) array (read-only: a view of the decoded bytes); width 1 gives (n,)."""
    try:
        raw = base64.b64decode(block)  # not validated: only the API calls (guard.FromTheAPIOnly); 30% faster
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a block of float64 values: {exc}") from None
    if len(raw) % (VALUE.itemsize * width):
        raise ValueError(f"a block of {len(raw)} bytes is not whole rows of {width} float64 values")
    values = np.frombuffer(raw, dtype=VALUE)
    return values if width == 1 else values.reshape(-1, width)


def to_json(body: object) -> bytes:
    """A JSON body; numpy arrays and floats are written as lists and numbers."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
