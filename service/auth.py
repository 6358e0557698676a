"""JWT bearer tokens: HS256 only, with sub/iat/exp/iss/aud all required.

The algorithm list given to PyJWT is fixed to HS256, so ``alg: none`` and every other algorithm are
rejected before any claim is read. Each failure maps to one of the three reasons a client is told:
missing (no usable Authorization header), expired, or invalid (everything else).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from service.errors import AuthenticationError

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss", "aud")


@dataclass(frozen=True)
class TokenPolicy:
    """Everything needed to issue and check tokens; built once from the settings."""

    secret: bytes
    issuer: str
    audience: str
    lifetime_s: int
    leeway_s: int = 0


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


def issue(
    policy: TokenPolicy, subject: str, now: float | None = None, name: str | None = None, generation: int = 0
) -> IssuedToken:
    """A signed token for ``subject`` (the user's stable id; ``name`` is informative) that expires after
    the policy's lifetime. ``generation`` is the user's password generation: see :func:`verify_claims`."""
    issued_at = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "name": name or subject,
        "gen": generation,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + policy.lifetime_s,
        "iss": policy.issuer,
        "aud": policy.audience,
    }
    return IssuedToken(jwt.encode(claims, policy.secret, algorithm=ALGORITHM), policy.lifetime_s)


def verify(policy: TokenPolicy, token: str) -> str:
    """The token's subject, or :class:`AuthenticationError` with reason ``expired`` or ``invalid``."""
    return verify_claims(policy, token)[0]


def verify_claims(policy: TokenPolicy, token: str) -> tuple[str, int]:
    """The token's subject and password generation (0 when absent), or :class:`AuthenticationError`."""
    subject, generation, _ = _verified(policy, token)
    return subject, generation


class VerifiedTokens:
    """Tokens already verified, kept with their claims until they expire (the signature and claim
    checks were ~10% of a /predict, py-spy). Only a token that passed :func:`verify_claims` is kept;
    past its ``exp`` it is checked again, and refused. Revocation is checked by the caller on every
    request (service/middleware/auth.py), so a kept token is never a revoked one."""

    MAX_TOKENS = 10_000

    def __init__(self, policy: TokenPolicy) -> None:
        self.policy = policy
        self._claims: dict[str, tuple[str, int, float]] = {}

    def claims(self, token: str) -> tuple[str, int]:
        kept = self._claims.get(token)
        if kept is not None and time.time() < kept[2]:
            return kept[0], kept[1]
        subject, generation, expires = _verified(self.policy, token)
        if len(self._claims) >= self.MAX_TOKENS:
            self._claims.clear()  # rare (that many live tokens at once): start again rather than track age
        self._claims[token] = (subject, generation, expires)
        return subject, generation


def _verified(policy: TokenPolicy, token: str) -> tuple[str, int, float]:
    """Subject, generation and the time until which the token is valid (``exp`` plus the leeway)."""
    try:
        claims = jwt.decode(
            token,
            policy.secret,
            algorithms=[ALGORITHM],
            audience=policy.audience,
            issuer=policy.issuer,
            leeway=policy.leeway_s,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError("expired", "token expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthenticationError("invalid", "invalid token: not yet valid") from None
    except jwt.InvalidAudienceError:
        raise AuthenticationError("invalid", "invalid token: wrong audience") from None
    except jwt.InvalidIssuerError:
        raise AuthenticationError("invalid", "invalid token: wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthenticationError("invalid", f"invalid token: missing claim {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise AuthenticationError("invalid", "invalid token: bad signature") from None
    except jwt.InvalidAlgorithmError:
        raise AuthenticationError("invalid", "invalid token: algorithm not allowed") from None
    except jwt.InvalidTokenError:
        raise AuthenticationError("invalid", "invalid token: malformed") from None
    subject, generation = claims["sub"], claims.get("gen", 0)
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("invalid", "invalid token: bad subject")
    if not isinstance(generation, int):
        raise AuthenticationError("invalid", "invalid token: bad generation")
    return subject, generation, float(claims["exp"]) + policy.leeway_s


def bearer_token(header: str | None) -> str:
    """The token from an ``Authorization`` header value; a missing or non-Bearer header is 'missing'."""
    if not header:
        raise AuthenticationError("missing", "missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("missing", "missing bearer token: the Authorization scheme must be Bearer")
    token = token.strip()
    if not token:
        raise AuthenticationError("missing", "missing bearer token: the Authorization header has no token")
    return token
