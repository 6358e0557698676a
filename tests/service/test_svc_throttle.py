"""Failed-login throttling (issue 11), on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.jobs import JobStore
from service.throttle import Limits, LoginThrottle

LIMITS = Limits(per_pair=3, per_address=5, per_user=8, window_s=60)


@pytest.fixture(params=["sqlite", "postgresql"])
def throttle(request: pytest.FixtureRequest, tmp_path: Path) -> LoginThrottle:
    if request.param == "sqlite":
        store = JobStore(tmp_path / "jobs.sqlite").open()
    else:
        store = JobStore(request.getfixturevalue("postgres").new_database()).open()
    return LoginThrottle(store, LIMITS)


def test_a_guesser_is_stopped_for_the_rest_of_the_window_and_others_are_not(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert throttle.retry_after("alice", "10.0.0.1", now=100) is None
        throttle.failed("alice", "10.0.0.1", now=100)
    wait = throttle.retry_after("alice", "10.0.0.1", now=110)
    assert wait == pytest.approx(50)
    assert throttle.retry_after("alice", "10.0.0.2", now=110) is None  # the same user elsewhere
    assert throttle.retry_after("bob", "10.0.0.1", now=110) is None  # another user from there
    assert throttle.retry_after("alice", "10.0.0.1", now=161) is None  # the window is over
    throttle.failed("alice", "10.0.0.1", now=161)
    assert throttle.retry_after("alice", "10.0.0.1", now=161) is None  # a new window counts from 1


def test_one_address_trying_many_names_is_stopped(throttle: LoginThrottle) -> None:
    for name in ("a", "b", "c", "d", "e"):
        throttle.failed(name, "10.0.0.9", now=0)
    assert throttle.retry_after("someone-else", "10.0.0.9", now=1) is not None
    assert throttle.retry_after("someone-else", "10.0.0.8", now=1) is None


def test_one_name_tried_from_many_addresses_is_slowed(throttle: LoginThrottle) -> None:
    for i in range(8):
        throttle.failed("alice", f"10.0.1.{i}", now=0)
    assert throttle.retry_after("alice", "10.0.2.1", now=1) is not None


def test_a_correct_password_clears_the_pair_only(throttle: LoginThrottle) -> None:
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1", now=0)
    throttle.succeeded("alice", "10.0.0.1")
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1", now=1)
    assert throttle.retry_after("alice", "10.0.0.1", now=2) is None  # 2 after the success, not 4
