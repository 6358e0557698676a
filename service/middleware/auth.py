"""Bearer-token authentication as a pure ASGI middleware (no Starlette ``BaseHTTPMiddleware``).

``BaseHTTPMiddleware`` wraps every request in an extra task and stream, which cost a measurable share
of /predict throughput here; this one only reads the header list and either calls the app or answers
401 itself. Everything is protected unless listed as public, so a new route is never open by mistake.
The verified subject is left in ``scope[USER_KEY]`` for the endpoints (e.g. job ownership).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from service import auth
from service.errors import AuthenticationError, ServiceError, ServiceUnavailableError
from service.middleware import USER_KEY, Receive, Scope, Send, header, send_error
from service.quiet import RateLimited
from service.users import Directory, UsersFileError

PUBLIC_PATHS = frozenset({"/", "/login", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json"})
PUBLIC_PREFIXES = ("/static_content/", "/assets/")
USERS_UNAVAILABLE = "the server cannot check tokens at the moment: try again later"
logger = logging.getLogger("admissions.api")
_USERS_FILE_LOG = RateLimited()  # a broken users file under load: a few lines a minute, not one a request


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BearerAuthMiddleware:
    """Checks ``Authorization: Bearer`` on every non-public HTTP request before the app sees it."""

    def __init__(
        self,
        app: Any,
        policy: Callable[[], auth.TokenPolicy | None],
        users: Callable[[], Directory | None] = lambda: None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.users = users
        self._tokens: auth.VerifiedTokens | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            scope[USER_KEY] = self._subject(scope)
        except ServiceError as exc:
            await send_error(send, exc)
            return
        await self.app(scope, receive, send)

    def _subject(self, scope: Scope) -> str:
        policy = self.policy()
        if policy is None:
            raise ServiceUnavailableError("service is starting: try again shortly")
        sent = header(scope, b"authorization").decode("latin-1") or None
        if self._tokens is None or self._tokens.policy is not policy:
            self._tokens = auth.VerifiedTokens(policy)
        subject, generation = self._tokens.claims(auth.bearer_token(sent))
        directory = self.users()
        if directory is not None:
            try:
                current = directory.generation(subject)
            except UsersFileError as exc:  # the path and cause are the operator's: to the log, not the client
                if _USERS_FILE_LOG.admit() is not None:
                    logger.error("request refused (503): %s", exc.message)
                raise ServiceUnavailableError(USERS_UNAVAILABLE) from None
            if current is None:
                raise AuthenticationError("invalid", "token revoked: the user no longer exists")
            if generation != current:
                raise AuthenticationError("invalid", "token revoked: the password was changed; log in again")
        return subject
