"""The service's errors: one root, each class carrying the HTTP status (and headers) it maps to.

ServiceError (500)
├── ConfigurationError   bad environment; raised before serving, never sent to a client
├── AuthenticationError (401, WWW-Authenticate: Bearer)  reason: missing / invalid / expired
│   └── LoginFailedError      wrong user name or password (one generic message for both)
├── InvalidInputError (400)   a request the schema accepts but the service cannot (e.g. a bad job id)
├── ForbiddenError (403)      a model service called by anything but the API service
├── NotFoundError (404)       an unknown job id
├── JobNotReadyError (409)    results asked for before the job completed
├── JobConflictError (409)    a retry of a job that has not failed
├── PayloadTooLargeError (413) a body over the route's limit, refused before it is read whole
├── UnsupportedMediaTypeError (415) a body of a type the route does not take (pickle, multipart, ...)
├── TooManyRequestsError (429, Retry-After)  too many failed logins
└── ServiceUnavailableError (503) a model service could not be reached
    └── JobStoreUnavailableError  the jobs database failed (full, read-only, corrupt, locked)
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Root of the service's errors; ``status`` is the HTTP status a client sees."""

    status: ClassVar[int] = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}


class ConfigurationError(ServiceError):
    """The environment is wrong; the message names the variable and how to fix it."""


class AuthenticationError(ServiceError):
    """No usable credentials. ``reason`` is one of missing / invalid / expired, as the issue asks."""

    status = 401

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason

    def headers(self) -> dict[str, str]:
        if self.reason == "missing":
            return {"WWW-Authenticate": 'Bearer realm="admissions"'}
        error = "invalid_token"
        return {"WWW-Authenticate": f'Bearer realm="admissions", error="{error}", error_description="{self.message}"'}


class LoginFailedError(AuthenticationError):
    """Wrong credentials: deliberately silent about which part was wrong."""

    def __init__(self) -> None:
        super().__init__("invalid", "invalid username or password")


class InvalidInputError(ServiceError):
    status = 400


class ForbiddenError(ServiceError):
    status = 403


class NotFoundError(ServiceError):
    status = 404


class JobNotReadyError(ServiceError):
    status = 409


class JobConflictError(ServiceError):
    status = 409


class PayloadTooLargeError(ServiceError):
    status = 413


class UnsupportedMediaTypeError(ServiceError):
    status = 415


class ServiceUnavailableError(ServiceError):
    status = 503


class TooManyRequestsError(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        self.retry_after_s = max(1, int(retry_after_s + 0.999))
        super().__init__(message, retry_after=self.retry_after_s)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class JobStoreUnavailableError(ServiceUnavailableError):
    """The jobs database failed; the message names the file and the problem."""
