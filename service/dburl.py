"""Database URLs (``ADMISSIONS_JOBS_URL``): checked before use, and never shown with a secret in them.

A password can sit in two places: ``user:password@host`` and the query string (libpq reads
``?password=``, ``?sslpassword=``). SQLAlchemy hides only the first when it prints a URL, and its parse
errors quote the whole string; so every URL the service prints goes through :func:`redacted`, and a
URL that cannot be used is refused with a sentence that names what is wrong, not with a traceback.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa

from service.errors import ConfigurationError

HIDDEN = "***"
_SECRET_WORDS = ("pass", "secret", "token", "key")  # in a query parameter's name: its value is hidden


def redacted(url: str) -> str:
    """``url`` with its password and every secret-looking query value replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition(':')[0]}://{HIDDEN}"  # unparsable: show the scheme only
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    query = urlencode(
        [
            (name, HIDDEN if any(word in name.lower() for word in _SECRET_WORDS) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def check(url: str, name: str = "ADMISSIONS_JOBS_URL") -> sa.engine.URL:
    """The parsed URL, or a :class:`ConfigurationError` naming ``name`` and the problem (the URL redacted)."""
    shown = redacted(url)
    try:
        parsed = sa.engine.make_url(url)
        port = parsed.port
    except (sa.exc.ArgumentError, ValueError):
        problem = "its port is not a number" if _bad_port(url) else "it cannot be parsed"
        raise ConfigurationError(
            f"{name} is not a usable database URL ({shown}): {problem}; "
            "the form is postgresql://user:password@host:5432/database"
        ) from None
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"{name} has port {port}, which is not between 1 and 65535 ({shown})")
    if parsed.get_backend_name() == "sqlite" and sqlite_file(parsed) is None:
        raise ConfigurationError(
            f"{name} is a SQLite database in memory ({shown}): each connection would have jobs of its own; "
            "set ADMISSIONS_JOBS_DB to a file instead"
        )
    return parsed


def sqlite_file(url: sa.engine.URL) -> Path | None:
    """The file of a ``sqlite:///path`` URL (then the store creates it itself, mode 0600); None for any
    other database, and for SQLite in memory, which would give each connection a database of its own."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _bad_port(url: str) -> bool:
    try:
        _ = urlsplit(url).port
    except ValueError:
        return True
    return False
