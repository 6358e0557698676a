"""Parsing off the event loop (service/offload.py) and the brief log of clients' mistakes
(service/quiet.py), without a server."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from core.contract import FEATURE_NAMES
from service import columnar, offload, quiet


def test_a_parse_whose_client_left_stops_and_the_queued_ones_never_start() -> None:
    """The client disconnects while its body is read a cell at a time: the reading stops at its next
    check, and a parse queued behind it (its client gone too) never runs."""
    body = (",".join(FEATURE_NAMES) + "\n" + "x,x,x,x,x,x,x\n" * 400_000).encode()  # seconds of cell reading
    stopped: list[str] = []
    ran_second: list[bool] = []

    def read(abandon: offload.Abandon) -> Any:
        try:
            return columnar.rows_from_csv(body, 10**6, abandon)
        except offload.AbandonedError:
            stopped.append(threading.current_thread().name)
            raise

    async def scenario() -> tuple[Any, Any, float]:
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        first = asyncio.ensure_future(offload.parse(read, receive))
        second = asyncio.ensure_future(offload.parse(lambda _: ran_second.append(True), receive))
        await asyncio.sleep(0.3)
        gone.set()
        answers = await asyncio.gather(first, second)
        started = time.monotonic()
        quick = await offload.parse(lambda _: "free again")  # the pool's one thread is free at once
        assert quick == "free again"
        return answers[0], answers[1], time.monotonic() - started

    first, second, wait = asyncio.run(scenario())
    assert (first, second) == (None, None)  # nobody to answer
    assert stopped and stopped[0].startswith("admissions-parse")
    assert ran_second == []
    assert wait < 2.0  # the abandoned read stopped within ~1,000 lines, not after its ~3 s


def test_a_cancelled_parse_stops_too() -> None:
    """BentoML's traffic timeout cancels the request: the thread's work is abandoned as well."""
    seen: list[str] = []

    def spin(abandon: offload.Abandon) -> None:
        while True:
            try:
                abandon.check()
            except offload.AbandonedError:
                seen.append("stopped")
                raise
            time.sleep(0.01)

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(offload.parse(spin), timeout=0.2)
        await offload.parse(lambda _: None)  # runs once the spinning parse has stopped

    asyncio.run(scenario())
    assert seen == ["stopped"]


class Login(BaseModel):
    username: str


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        quiet.BENTOML_LOGGER, logging.ERROR, __file__, 1, "Exception on %s [%s]", ("/login", "POST"), exc_info
    )


def test_a_refused_body_is_one_short_rate_limited_line_without_a_traceback() -> None:
    try:
        Login.model_validate({"username": 1})
    except ValidationError as exc:
        error = exc
    brief = quiet.ClientErrorsInBrief(quiet.RateLimited(lines=2, interval_s=3600))
    records = [_record(error) for _ in range(5)]
    kept = [record for record in records if brief.filter(record)]
    assert len(kept) == 2
    line = logging.Formatter().format(kept[0])
    assert line == "refused a request to /login: 1 problem(s), the first: username: Input should be a valid string"
    assert "Traceback" not in line and kept[0].levelno == logging.INFO


def test_a_server_error_keeps_its_traceback() -> None:
    record = _record(RuntimeError("a bug"))
    assert quiet.ClientErrorsInBrief().filter(record)
    assert "Traceback" in logging.Formatter().format(record)


def test_the_rate_limit_says_how_many_lines_it_left_out() -> None:
    limit = quiet.RateLimited(lines=1, interval_s=0.2)
    assert [limit.admit(), limit.admit(), limit.admit()] == [0, None, None]
    time.sleep(0.25)
    assert limit.admit() == 2
