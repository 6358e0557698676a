"""Failed logins, counted per user name, per client address and per pair, in the jobs database.

Each ``/login`` costs ~120 ms of argon2 work on one of two cores, so password guessing is also a way to
starve predictions. After a few failures a key is throttled for the rest of its window: the answer is
429 with ``Retry-After`` and the hash is not computed at all. The pair (name, address) throttles first,
so a guesser is stopped quickly while the same user logging in from elsewhere is not; the address
alone stops one client trying many names; the name alone (a higher limit) slows a guess spread over
many addresses. Counts live in the jobs database so every API worker and replica shares them.

Why not the ``limits`` library: its storages are memory (one per process), Redis, Memcached and
MongoDB; sharing through the database this service already has takes one table and one upsert.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.jobs import LOGIN_FAILURES, JobStore


@dataclass(frozen=True)
class Limits:
    per_pair: int = 5  # one client guessing one user's password
    per_address: int = 20  # one client trying many names
    per_user: int = 50  # one name tried from many clients
    window_s: float = 300.0


class LoginThrottle:
    def __init__(self, store: JobStore, limits: Limits = Limits()) -> None:
        self.store = store
        self.limits = limits

    def retry_after(self, user: str, address: str, now: float | None = None) -> float | None:
        """Seconds until a login for ``user`` from ``address`` may be tried again; None: try now."""
        now = time.time() if now is None else now
        keys = self._keys(user, address)
        with self.store.guard("cannot check failed logins"), self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(LOGIN_FAILURES).where(LOGIN_FAILURES.c.key.in_(list(keys)))).all()
        waits = [
            row.window_start + self.limits.window_s - now
            for row in rows
            if row.failures >= keys[row.key] and row.window_start + self.limits.window_s > now
        ]
        return max(waits) if waits else None

    def failed(self, user: str, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        expired = LOGIN_FAILURES.c.window_start <= now - self.limits.window_s
        with self.store.guard("cannot count failed logins"), self.store.engine.begin() as conn:
            for key in self._keys(user, address):
                insert = _insert(conn).values(key=key, window_start=now, failures=1)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=[LOGIN_FAILURES.c.key],
                        set_={
                            "failures": sa.case((expired, 1), else_=LOGIN_FAILURES.c.failures + 1),
                            "window_start": sa.case((expired, now), else_=LOGIN_FAILURES.c.window_start),
                        },
                    )
                )

    def succeeded(self, user: str, address: str) -> None:
        """A correct password clears the pair's count (not the address's or the name's)."""
        with self.store.guard("cannot clear failed logins"), self.store.engine.begin() as conn:
            conn.execute(LOGIN_FAILURES.delete().where(LOGIN_FAILURES.c.key == f"pair:{user}@{address}"))

    def _keys(self, user: str, address: str) -> dict[str, int]:
        return {
            f"pair:{user}@{address}": self.limits.per_pair,
            f"address:{address}": self.limits.per_address,
            f"user:{user}": self.limits.per_user,
        }


def _insert(conn: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(LOGIN_FAILURES)
