"""Failed logins, counted per user name, per client address and per pair, in the jobs database.

Each ``/login`` costs ~120 ms of argon2 work on one of two cores, so password guessing is also a way to
starve predictions. After a few failures a key is throttled for the rest of its window: the answer is
429 with ``Retry-After`` and the hash is not computed at all. The pair (name, address) throttles first,
so a guesser is stopped quickly while the same user logging in from elsewhere is not; the address
alone stops one client trying many names; the name alone (a higher limit) stops a guess spread over
many addresses, but only from addresses that have themselves failed in the window. It throttles the
guessers, not the name: a name over its limit still gets one try from each address with no failures,
so the real user is never locked out by others (OWASP's lockout advice), and each try that fails marks
that address. A guess spread over many addresses therefore gets at most ``per_user`` tries plus one per
fresh address in a window. Counts live in the jobs database so every API worker and replica shares them.

Keys hold a hash of the name and address, never the text: a key is 72 characters whatever a client
sends, so no input can make the write fail (a 190-character "address" once overflowed PostgreSQL's
column, and every failed guess answered 503 uncounted). A count that cannot be written is kept in this
process and still throttles here until a write succeeds.

Why not the ``limits`` library: its storages are memory (one per process), Redis, Memcached and
MongoDB; sharing through the database this service already has takes one table and one upsert.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from service.errors import JobStoreUnavailableError
from service.jobs import LOGIN_FAILURES, JobStore

UNPARSABLE = "unparsable"  # every client whose address is not an IP address shares one key


@dataclass(frozen=True)
class Limits:
    per_pair: int = 5  # one client guessing one user's password
    per_address: int = 20  # one client trying many names
    per_user: int = 50  # one name tried from many clients (only failing clients are refused)
    window_s: float = 300.0


def client_address(host: str | None) -> str:
    """The address a client is counted under: an IPv4 address, or an IPv6 client's /64 (one host
    holds a whole /64, so each of its addresses must not count as a new client)."""
    try:
        ip = ipaddress.ip_address((host or "").strip())
    except ValueError:
        return UNPARSABLE
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(self, store: JobStore, limits: Limits = Limits()) -> None:
        self.store = store
        self.limits = limits
        self._unwritten: dict[str, list[float]] = {}  # key -> times of failures the database did not take

    def retry_after(self, user: str, address: str, now: float | None = None) -> float | None:
        """Seconds until a login for ``user`` from ``address`` may be tried again; None: try now."""
        now = time.time() if now is None else now
        keys = self._keys(user, address)
        with self.store.guard("cannot check failed logins"), self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(LOGIN_FAILURES).where(LOGIN_FAILURES.c.key.in_(list(keys)))).all()
        counts = {key: (0, now) for key in keys}
        for row in rows:
            if row.window_start + self.limits.window_s > now:
                counts[row.key] = (row.failures, row.window_start)
        for key, times in self._unwritten.items():
            if key in counts:
                recent = [t for t in times if t + self.limits.window_s > now]
                counts[key] = (counts[key][0] + len(recent), min([counts[key][1], *recent]))
        _pair, by_address, by_user = keys
        address_failing = counts[by_address][0] > 0
        waits = [
            start + self.limits.window_s - now
            for key, (failures, start) in counts.items()
            if failures >= keys[key] and (key != by_user or address_failing)
        ]
        return max(waits) if waits else None

    def failed(self, user: str, address: str, now: float | None = None) -> None:
        """Count a failure. If the database cannot take it, it is kept here (and still throttles) and
        the error propagates: the client gets 503, never an uncounted 401."""
        now = time.time() if now is None else now
        keys = list(self._keys(user, address))
        live = self.limits.window_s
        pending = {key: [t for t in self._unwritten.get(key, []) if t + live > now] + [now] for key in keys}
        try:
            self._write(pending, now)
        except JobStoreUnavailableError:
            self._unwritten.update(pending)
            raise
        for key in keys:
            self._unwritten.pop(key, None)

    def _write(self, pending: dict[str, list[float]], now: float) -> None:
        expired = LOGIN_FAILURES.c.window_start <= now - self.limits.window_s
        with self.store.guard("cannot count failed logins"), self.store.engine.begin() as conn:
            for key, times in pending.items():
                count = len(times)
                insert = _insert(conn).values(key=key, window_start=min(times), failures=count)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=[LOGIN_FAILURES.c.key],
                        set_={
                            "failures": sa.case((expired, count), else_=LOGIN_FAILURES.c.failures + count),
                            "window_start": sa.case((expired, now), else_=LOGIN_FAILURES.c.window_start),
                        },
                    )
                )

    def succeeded(self, user: str, address: str) -> None:
        """A correct password clears the pair's count (not the address's or the name's)."""
        pair = next(iter(self._keys(user, address)))
        self._unwritten.pop(pair, None)
        with self.store.guard("cannot clear failed logins"), self.store.engine.begin() as conn:
            conn.execute(LOGIN_FAILURES.delete().where(LOGIN_FAILURES.c.key == pair))

    def _keys(self, user: str, address: str) -> dict[str, int]:
        """The pair's, the address's and the name's keys (in that order) and their limits."""
        return {
            _key("pair", user, address): self.limits.per_pair,
            _key("address", address): self.limits.per_address,
            _key("user", user): self.limits.per_user,
        }


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{digest}"


def _insert(conn: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(LOGIN_FAILURES)
