"""Settings: every variable read in one place, bad values refused with a message naming the variable."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from service import dburl, secret_strength, settings
from service.errors import ConfigurationError

GOOD_SECRET = secrets.token_urlsafe(48)


def test_defaults_need_only_a_secret() -> None:
    loaded = settings.load({"JWT_SECRET_KEY": GOOD_SECRET})
    assert loaded.jwt_secret == GOOD_SECRET.encode()
    assert not loaded.ephemeral_secret
    assert loaded.token_lifetime_s == 30 * 60
    assert loaded.max_batch_size == 10_000
    assert loaded.users_file == settings.DEFAULT_VAR_DIR / "users.json"
    assert loaded.jobs_db == settings.DEFAULT_VAR_DIR / "jobs.sqlite"


def test_missing_secret_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY is not set"):
        settings.load({})


def test_short_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        settings.load({"JWT_SECRET_KEY": "x" * 31})


def test_dev_mode_generates_one_secret_and_shares_it_through_the_environment() -> None:
    env: dict[str, str] = {"ADMISSIONS_DEV_MODE": "1"}
    first = settings.prepare(env)
    assert first.ephemeral_secret
    assert len(first.jwt_secret) >= settings.MIN_SECRET_BYTES
    assert env["JWT_SECRET_KEY"] == first.jwt_secret.decode()
    assert settings.load(env).jwt_secret == first.jwt_secret  # what each worker then reads


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = {
        "JWT_SECRET_KEY": GOOD_SECRET,
        "JWT_LIFETIME_MINUTES": "0.5",
        "JWT_ISSUER": "iss-x",
        "JWT_AUDIENCE": "aud-x",
        "ADMISSIONS_USERS_FILE": str(tmp_path / "u.json"),
        "ADMISSIONS_JOBS_DB": str(tmp_path / "j.sqlite"),
        "ADMISSIONS_MAX_BATCH_SIZE": "7",
        "ADMISSIONS_MAX_JOB_SIZE": "9",
    }
    loaded = settings.load(env)
    assert (loaded.token_lifetime_s, loaded.issuer, loaded.audience) == (30, "iss-x", "aud-x")
    assert (loaded.users_file, loaded.jobs_db) == (tmp_path / "u.json", tmp_path / "j.sqlite")
    assert (loaded.max_batch_size, loaded.max_job_size) == (7, 9)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADMISSIONS_MAX_BATCH_SIZE", "many"),
        ("ADMISSIONS_MAX_BATCH_SIZE", "0"),
        ("JWT_LIFETIME_MINUTES", "-1"),
        ("JWT_LIFETIME_MINUTES", "nan"),
        ("ADMISSIONS_API_WORKERS", "two"),
    ],
)
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        settings.load({"JWT_SECRET_KEY": GOOD_SECRET, name: value})
        settings.api_workers({name: value})


def test_model_tag_and_urls() -> None:
    assert settings.model_tag({}) == "admissions:latest"
    assert settings.model_tag({"ADMISSIONS_MODEL_TAG": "admissions:abc"}) == "admissions:abc"
    assert settings.single_model_url({}) is None
    assert settings.batch_model_url({"BATCH_MODEL_URL": "http://127.0.0.1:3002"}) == "http://127.0.0.1:3002"


@pytest.mark.parametrize("value", ["${ADMISSIONS_JOBS_URL:-}", "jobs.sqlite", "admissions:s3cret@db/admissions"])
def test_a_jobs_url_without_a_scheme_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"ADMISSIONS_JOBS_URL is not a database URL") as refused:
        settings.load({"JWT_SECRET_KEY": GOOD_SECRET, "ADMISSIONS_JOBS_URL": value})
    assert value not in str(refused.value)
    url = "postgresql://admissions:s3cret@db:5432/admissions"
    assert settings.load({"JWT_SECRET_KEY": GOOD_SECRET, "ADMISSIONS_JOBS_URL": f" {url} "}).jobs_url == url
    assert settings.load({"JWT_SECRET_KEY": GOOD_SECRET, "ADMISSIONS_JOBS_URL": " "}).jobs_url is None


# Each recipe a reader is likely to follow, as a function drawing one secret. A passphrase is 12 words from
# the 7,776 most common English words, diceware's size of list (155 bits of randomness): 10 words (129
# bits) clear the 128-bit bar by one bit, and a draw with a word repeated next to itself and common words
# around it fell under it (seen once; about 4 draws in a million, docs/security.md).
_WORDS = FREQUENCY_LISTS["english_wikipedia"][:7776]
RECIPES: dict[str, Callable[[], str]] = {
    "openssl rand -hex 32": lambda: secrets.token_hex(32),
    "openssl rand -base64 32": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    "token_urlsafe(32)": lambda: secrets.token_urlsafe(32),
    "token_urlsafe(48)": lambda: secrets.token_urlsafe(48),
    "12-word passphrase": lambda: "-".join(secrets.choice(_WORDS) for _ in range(12)),
    "12-word passphrase, spaces": lambda: " ".join(secrets.choice(_WORDS) for _ in range(12)),
}
# Per recipe: 400 here (~25 s on one core); ADMISSIONS_SECRET_DRAWS=5000 for the figures in docs/security.md.
DRAWS = int(os.environ.get("ADMISSIONS_SECRET_DRAWS", "400"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_common_recipe_is_accepted_every_time(recipe: str) -> None:
    """The old distinct-bytes rule refused `openssl rand -hex 32` in ~24% of draws."""
    refused = []
    for _ in range(DRAWS):
        secret = RECIPES[recipe]()
        try:
            settings.load({"JWT_SECRET_KEY": secret})
        except ConfigurationError as exc:
            refused.append(f"{secret}: {exc}")
    assert refused == []


def test_the_recipes_clear_the_bar_with_room_to_spare() -> None:
    """A margin, so a rare unlucky draw is not one refusal a thousand: the lowest estimate of 100 draws
    of each 32-byte recipe stays well above the 128 bits asked for."""
    for recipe in ("openssl rand -hex 32", "openssl rand -base64 32", "token_urlsafe(32)"):
        lowest = min(secret_strength.estimated_bits(RECIPES[recipe]()) for _ in range(100))
        assert lowest > secret_strength.MIN_BITS + 30, (recipe, lowest)


@pytest.mark.parametrize(
    "weak",
    [
        " " * 32,
        "password123" * 3,
        "ab" * 24,
        "0123456789abcde" * 3,
        "abcdefghijklmnopqrstuvwxyz0123456789",  # the alphabet
        "0123456789" * 4,
        "zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA",  # reversed sequences
        "qwertyuiopasdfghjklzxcvbnm1234567890",  # keyboard rows
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.",  # keyboard columns
        "x9Fk2abcdefghijklmnopqrstuvwxyz0123",  # a random start does not save a sequence
        "thisismysupersecretkeyforjwttokens",  # words
        "ThisIsMyVerySecretKeyForTheAdmissionsApi",
        "my-super-secret-jwt-signing-key-2024!",
        "correct horse battery staple correct horse battery staple",
        "P@ssw0rdP@ssw0rdP@ssw0rdP@ssw0rd",  # l33t
        "admissions-api-secret-key-changeme",
        "my-super-secret-jwt-signing-key-for-the-admissions-api",
        "this is the secret key of the admissions service",
        "the-quick-brown-fox-jumps-over-the-lazy-dog",
        "Kx8#mQ2vLp9wZr4tKx8#mQ2vLp9wZr4tKx8#mQ2vLp9wZr4t",  # a random-looking chunk, repeated
        "a" * 4000,  # long, but no harder to guess
    ],
)
def test_guessable_secrets_are_refused_however_long(weak: str) -> None:
    with pytest.raises(ConfigurationError, match=r"too weak: guessable in about 2\^\d+ tries.*token_urlsafe"):
        settings.load({"JWT_SECRET_KEY": weak})


@pytest.mark.parametrize(
    "pasted",
    [
        "$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
        "$(openssl rand -hex 32)",
    ],
)
def test_the_recipe_itself_is_refused_with_a_message_saying_so(pasted: str) -> None:
    """A compose .env file does not run $(...): the command would become the secret."""
    with pytest.raises(ConfigurationError, match="the command that makes a secret, not its output"):
        settings.load({"JWT_SECRET_KEY": pasted})


def test_the_alphabet_is_the_one_the_secret_uses() -> None:
    assert secret_strength.alphabet_size("0123456789abcdef") == 16
    assert secret_strength.alphabet_size("abcXYZ") == 52
    assert secret_strength.alphabet_size("abc-_09") == 26 + 10 + 2  # the punctuation it uses
    assert secret_strength.alphabet_size("0123456789ABCDEF") == 16
    assert secret_strength.alphabet_size(" " * 40) == 1


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://admissions:s3cret@db:notaport/admissions", "its port is not a number"),
        ("postgresql://admissions:s3cret@db:99999/admissions?password=s3cret", "not between 1 and 65535"),
        ("sqlite://", "in memory"),
    ],
)
def test_an_unusable_jobs_url_is_one_sentence_without_its_password(url: str, problem: str) -> None:
    """`notaport` as the port was a ValueError traceback and exit 1."""
    with pytest.raises(ConfigurationError, match="ADMISSIONS_JOBS_URL") as refused:
        settings.load({"JWT_SECRET_KEY": GOOD_SECRET, "ADMISSIONS_JOBS_URL": url})
    assert problem in refused.value.message and "s3cret" not in refused.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://h/db?sslpassword=pw&PassFile=x", "postgresql://h/db?sslpassword=***&PassFile=***"),
        ("postgresql://u:pw@[bad/db", "postgresql://***"),
    ],
)
def test_database_urls_are_shown_without_secrets(url: str, shown: str) -> None:
    assert dburl.redacted(url) == shown


def test_forwarded_headers_are_trusted_only_from_configured_proxies() -> None:
    env: dict[str, str] = {"JWT_SECRET_KEY": GOOD_SECRET}
    assert settings.prepare(env).trusted_proxies == ()
    assert env["FORWARDED_ALLOW_IPS"] == ""  # uvicorn's default would be 127.0.0.1,::1
    env = {"JWT_SECRET_KEY": GOOD_SECRET, "ADMISSIONS_TRUSTED_PROXIES": " 10.0.0.5, 10.1.0.0/16 ,::1"}
    assert settings.prepare(env).trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "::1")
    assert env["FORWARDED_ALLOW_IPS"] == "10.0.0.5,10.1.0.0/16,::1"
    assert settings.load(env).trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "::1")  # what each worker reads


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADMISSIONS_TRUSTED_PROXIES": "proxy.local"}, "must list IP addresses or networks"),
        ({"ADMISSIONS_TRUSTED_PROXIES": "0.0.0.0/0"}, "must not trust every address"),
        ({"FORWARDED_ALLOW_IPS": "*"}, "name the proxies in ADMISSIONS_TRUSTED_PROXIES"),
    ],
)
def test_bad_proxy_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings.load({"JWT_SECRET_KEY": GOOD_SECRET, **env})


@pytest.mark.parametrize(("name", "value", "message"), [
    ("JWT_LIFETIME_MINUTES", "1e9", "at most 1440"),
    ("ADMISSIONS_API_WORKERS", "64", "at most 32"),
])  # fmt: skip
def test_upper_bounds(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be {message}"):
        settings.load({"JWT_SECRET_KEY": GOOD_SECRET, name: value})
        settings.api_workers({name: value})


def test_served_from_a_bento_the_state_lives_outside_it(tmp_path: Path) -> None:
    """A Bento is immutable: its own folder must never be the default for the jobs database."""
    bento = tmp_path / "bento"
    (bento / "src").mkdir(parents=True)
    (bento / "bento.yaml").write_text("service: x\n")
    state = settings.default_var_dir(bento / "src", {"XDG_STATE_HOME": str(tmp_path / "state")})
    assert state == tmp_path / "state" / "admissions"
    assert settings.default_var_dir(tmp_path / "checkout", {}) == tmp_path / "checkout" / "var"
