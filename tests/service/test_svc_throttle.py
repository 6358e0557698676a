"""Failed-login throttling (issue 11), on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from service.errors import JobStoreUnavailableError
from service.jobs import LOGIN_FAILURES, JobStore
from service.throttle import UNPARSABLE, Limits, LoginThrottle, client_address

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


def test_one_name_tried_from_many_addresses_is_stopped_there_but_its_user_is_not_locked_out(
    throttle: LoginThrottle,
) -> None:
    """The issue's attack at the test's limits: enough guesses from enough addresses to pass the name's
    limit. Every guessing address is refused; a clean address (the real user) may still try."""
    guessers = [f"10.0.1.{i}" for i in range(4)]
    for i in range(8):
        throttle.failed("alice", guessers[i % 4], now=0)
    for address in guessers:
        assert throttle.retry_after("alice", address, now=1) == pytest.approx(59)
    assert throttle.retry_after("alice", "10.0.2.1", now=1) is None  # the real alice, from her own address
    assert throttle.retry_after("alice", "10.0.2.1", now=30) is None  # and again: it is not a one-off


def test_past_the_names_limit_each_fresh_address_gets_one_guess(throttle: LoginThrottle) -> None:
    """Total guessing stays bounded: once over the name's limit, a failure marks its address."""
    for i in range(8):
        throttle.failed("alice", f"10.0.1.{i}", now=0)
    fresh = "10.0.3.1"
    assert throttle.retry_after("alice", fresh, now=1) is None
    throttle.failed("alice", fresh, now=1)
    assert throttle.retry_after("alice", fresh, now=2) is not None
    # A guesser's failures against other names mark its address too.
    throttle.failed("bob", "10.0.3.2", now=2)
    assert throttle.retry_after("alice", "10.0.3.2", now=3) is not None


def test_keys_are_bounded_whatever_the_address(throttle: LoginThrottle) -> None:
    """A 5,000-character "address" (a forged header, once) overflowed PostgreSQL's column: each failed
    guess was an uncounted 503. Keys are hashes now, and garbage addresses share one key."""
    for i in range(3):
        throttle.failed("alice", client_address("x" * 5000 + str(i)), now=0)
    assert throttle.retry_after("alice", client_address("not an address"), now=1) is not None
    with throttle.store.engine.connect() as conn:
        keys = conn.execute(sa.select(LOGIN_FAILURES.c.key)).scalars().all()
    assert keys and max(len(key) for key in keys) <= 72
    assert not any("alice" in key for key in keys)


def test_a_failure_the_database_cannot_take_still_throttles(throttle: LoginThrottle, tmp_path: Path) -> None:
    """Never an uncounted guess: the write error is a 503 for that guess, and the count is kept in the
    process until the database takes it."""
    working = throttle.store
    throttle.store = JobStore(tmp_path / "missing" / "folder" / "jobs.sqlite")  # cannot be written
    for _ in range(2):
        with pytest.raises(JobStoreUnavailableError):
            throttle.failed("alice", "10.0.0.1", now=0)
    throttle.store = working
    throttle.failed("alice", "10.0.0.1", now=1)  # takes the two kept ones with it: 3
    assert throttle.retry_after("alice", "10.0.0.1", now=2) is not None
    assert throttle._unwritten == {}


@pytest.mark.parametrize(
    ("host", "counted"),
    [
        ("10.0.0.1", "10.0.0.1"),
        (" 10.0.0.1 ", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8::ffff:1", "2001:db8::/64"),  # the same client's other address
        ("1.2.3.4, 5.6.7.8", UNPARSABLE),
        ("", UNPARSABLE),
        (None, UNPARSABLE),
    ],
)
def test_client_addresses_are_validated(host: str | None, counted: str) -> None:
    assert client_address(host) == counted


def test_a_correct_password_clears_the_pair_only(throttle: LoginThrottle) -> None:
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1", now=0)
    throttle.succeeded("alice", "10.0.0.1")
    for _ in range(2):
        throttle.failed("alice", "10.0.0.1", now=1)
    assert throttle.retry_after("alice", "10.0.0.1", now=2) is None  # 2 after the success, not 4
