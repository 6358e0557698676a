"""JWT rules: HS256 only, all claims required, and each failure mapped to missing / invalid / expired."""

from __future__ import annotations

import base64
import json
import secrets
import time

import jwt
import pytest

from service import auth
from service.errors import AuthenticationError

POLICY = auth.TokenPolicy(secrets.token_bytes(32), "admissions-api", "admissions-clients", 1800)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "alice",
        "iat": now,
        "exp": now + 600,
        "iss": POLICY.issuer,
        "aud": POLICY.audience,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict[str, object], key: bytes = POLICY.secret, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def reason_of(token: str) -> tuple[str, str]:
    with pytest.raises(AuthenticationError) as caught:
        auth.verify(POLICY, token)
    assert caught.value.status == 401
    assert caught.value.headers()["WWW-Authenticate"].startswith("Bearer")
    return caught.value.reason, caught.value.message


def test_issued_token_verifies_and_carries_every_required_claim() -> None:
    issued = auth.issue(POLICY, "alice")
    assert issued.expires_in == 1800
    assert auth.verify(POLICY, issued.access_token) == "alice"
    payload = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert set(auth.REQUIRED_CLAIMS) <= set(payload)
    assert payload["exp"] - payload["iat"] == 1800
    assert jwt.get_unverified_header(issued.access_token)["alg"] == "HS256"


def test_alg_none_is_rejected() -> None:
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    assert reason_of(token)[0] == "invalid"


def test_other_hmac_algorithm_is_rejected() -> None:
    token = signed(claims(), key=secrets.token_bytes(64), algorithm="HS512")
    assert reason_of(token) == ("invalid", "invalid token: algorithm not allowed")


def test_other_secret_is_rejected() -> None:
    assert reason_of(signed(claims(), key=secrets.token_bytes(32))) == ("invalid", "invalid token: bad signature")


def test_tampered_payload_is_rejected() -> None:
    header, _, signature = signed(claims()).split(".")
    forged = f"{header}.{b64(claims(sub='admin'))}.{signature}"
    assert reason_of(forged) == ("invalid", "invalid token: bad signature")


def test_expired_token_says_expired() -> None:
    old = int(time.time()) - 3600
    assert reason_of(signed(claims(iat=old, exp=old + 60))) == ("expired", "token expired")


def test_token_expiring_now_from_issue() -> None:
    issued = auth.issue(POLICY, "alice", now=time.time() - POLICY.lifetime_s - 1)
    assert reason_of(issued.access_token)[0] == "expired"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "someone-else"}, "wrong issuer"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"exp": None}, "missing claim exp"),
        ({"aud": None}, "missing claim aud"),
        ({"iss": None}, "missing claim iss"),
        ({"iat": None}, "missing claim iat"),
        ({"sub": None}, "missing claim sub"),
    ],
)
def test_bad_claims_are_invalid(overrides: dict[str, object], message: str) -> None:
    reason, text = reason_of(signed(claims(**overrides)))
    assert reason == "invalid"
    assert message in text


@pytest.mark.parametrize("token", ["abc", "a.b.c", "", "ey.ey"])
def test_malformed_token_is_invalid(token: str) -> None:
    assert reason_of(token)[0] == "invalid"


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc"])
def test_header_without_a_bearer_token_is_missing(header: str | None) -> None:
    with pytest.raises(AuthenticationError) as caught:
        auth.bearer_token(header)
    assert caught.value.reason == "missing"
    assert caught.value.headers() == {"WWW-Authenticate": 'Bearer realm="admissions"'}


def test_bearer_scheme_is_case_insensitive() -> None:
    assert auth.bearer_token("bearer tok.en.x") == "tok.en.x"


def test_tokens_carry_the_password_generation() -> None:
    issued = auth.issue(POLICY, "u-1", generation=3)
    assert auth.verify_claims(POLICY, issued.access_token) == ("u-1", 3)


def test_a_kept_token_is_checked_again_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """VerifiedTokens skips the signature check for a token it has verified, until the token's exp."""
    checks: list[str] = []
    verify = auth._verified

    def counted(policy: auth.TokenPolicy, token: str) -> tuple[str, int, float]:
        checks.append(token)
        return verify(policy, token)

    monkeypatch.setattr(auth, "_verified", counted)
    tokens = auth.VerifiedTokens(POLICY)
    token = auth.issue(POLICY, "u-1", generation=3).access_token
    assert tokens.claims(token) == ("u-1", 3)
    assert tokens.claims(token) == ("u-1", 3) and len(checks) == 1  # kept
    old = auth.issue(POLICY, "u-1", now=time.time() - 3600).access_token  # expired an hour ago
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.claims(old)
    tokens._claims[token] = ("u-1", 3, time.time() - 1)  # as if its exp had passed since it was kept
    assert tokens.claims(token) == ("u-1", 3) and checks.count(token) == 2  # verified again
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthenticationError):
        tokens.claims(forged)  # a different string is never taken from the cache
