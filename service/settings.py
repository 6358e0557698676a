"""Every environment variable the service reads, read here and nowhere else, into typed settings.

Two kinds of settings exist. Those needed while the BentoML classes are *defined* (the model tag, the
model-service URLs, the batch limits) are read by small functions called at import of the service
modules, so that a Bento built with ``--arg model_tag=...`` carries that model; a bad value there
gives its default (:func:`declared`) and the deployment check (:func:`prepare`) refuses it. Those needed only
while serving (the JWT secret, users file, jobs database) are read by :func:`load` when the API service
starts, so building a Bento needs no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from core import aliases
from service import container_limits, dburl, secret_strength
from service.errors import ConfigurationError

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_var_dir(root: Path = PROJECT_ROOT, env: Mapping[str, str] = os.environ) -> Path:
    """Where the users file and jobs database live unless set: ``var/`` of a source checkout. A Bento
    is immutable (served from the store, its folder must not change), so served from a Bento the
    default is the user's state folder instead (``$XDG_STATE_HOME/admissions``)."""
    if not (root.parent / "bento.yaml").is_file():
        return root / "var"
    state = env.get("XDG_STATE_HOME", "").strip()
    return (Path(state) if state else Path.home() / ".local" / "state") / "admissions"


DEFAULT_VAR_DIR = default_var_dir()
DEFAULT_MODEL_TAG = "admissions:latest"
MIN_SECRET_BYTES = 32
DEFAULT_MAX_BATCH_SIZE = 10_000
DEFAULT_MAX_JOB_SIZE = 100_000  # ~120 MB while parsed (bench/job_memory.py); fits 768 MB with 2 workers
DEFAULT_MAX_CSV_BATCH_SIZE = 100_000  # ~25 MB while parsed
# A CSV row costs ~230-280 bytes while parsed (bench/job_memory.py): two workers each taking a
# 400,000-row upload stay inside the 768 MB container limit; raise it where there is more memory.
DEFAULT_MAX_CSV_JOB_SIZE = 400_000
DEFAULT_API_WORKERS = 2
DEFAULT_JOB_LEASE_S = 60.0  # a worker that stops renewing loses its job this long after
DEFAULT_MAX_ACTIVE_JOBS = 20  # pending or running jobs per user: one user cannot queue up the service
DEFAULT_PREDICTION_LOG_DAYS = 365.0  # how long the prediction log keeps a prediction (docs/monitoring.md)
DEFAULT_DRIFT_WINDOW = 500  # the newest predictions whose inputs are compared with the training profile
MAX_OUTCOMES = 10_000  # outcomes one POST /outcomes may carry
DEFAULT_JOB_RETRY_WINDOW_S = 600.0  # how long a job waits out a model-service outage before failing
DEFAULT_TOKEN_MINUTES = 30.0
MAX_TOKEN_MINUTES = 24 * 60.0  # a stolen token must not outlive a day
MAX_API_WORKERS = 32
DEFAULT_ISSUER = "admissions-api"
DEFAULT_AUDIENCE = "admissions-clients"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """What the API service needs at run time; see the README's table for each variable."""

    jwt_secret: bytes
    ephemeral_secret: bool
    token_lifetime_s: int
    issuer: str
    audience: str
    users_file: Path
    jobs_db: Path
    jobs_url: str | None
    max_batch_size: int
    max_job_size: int
    max_csv_batch_size: int
    max_csv_job_size: int
    job_lease_s: float
    job_retry_window_s: float
    max_active_jobs: int
    login_limits: tuple[int, int, int, float]  # failed logins per (name, address), address, name; window (s)
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For names the client
    memory_budget_mb: int | None = None  # per worker; None: from the container's limit, if any
    prediction_log: bool = True  # ADMISSIONS_PREDICTION_LOG=off: answered predictions are not recorded
    prediction_log_days: float = DEFAULT_PREDICTION_LOG_DAYS
    drift_window: int = DEFAULT_DRIFT_WINDOW


def declared(read: Callable[..., T]) -> T:
    """For settings read while the service classes are declared (at import): a bad value gives the
    default here, so importing never exits (``make openapi``, ``bentoml build``), and the service then
    refuses to start in its deployment check (:func:`prepare`), with one sentence naming the variable."""
    try:
        return read()
    except ConfigurationError:
        return read({})


def served_model_tag(env: Mapping[str, str] = os.environ) -> str:
    """The model to serve: :func:`model_tag`, except that its default, the latest registration, gives way
    to the champion (core/aliases.py) when this store has one and no tag was asked for."""
    configured = model_tag(env)
    if configured != DEFAULT_MODEL_TAG or env.get("ADMISSIONS_MODEL_TAG", "").strip():
        return configured
    try:
        return aliases.promoted_tag(configured.split(":", maxsplit=1)[0]) or configured
    except (OSError, ValueError, KeyError):  # an unreadable record: serve what the settings say
        return configured


def model_tag(env: Mapping[str, str] = os.environ) -> str:
    """The model both model services load.

    In order: the Bento argument ``model_tag``, which the pipeline's BuildBento pins to the exact
    registered tag (``bentoml build --arg``), so a Bento always serves the model it was built with;
    else ``ADMISSIONS_MODEL_TAG``; else the latest registered model.
    """
    import bentoml  # the Bento arguments live in BentoML's container; keep this module light

    pinned = str(getattr(bentoml.use_arguments(), "model_tag", "") or "").strip()
    return pinned or env.get("ADMISSIONS_MODEL_TAG", "").strip() or DEFAULT_MODEL_TAG


def single_model_url(env: Mapping[str, str] = os.environ) -> str | None:
    """``SINGLE_MODEL_URL``: a separately running ``SingleModel``; unset means in-process."""
    return env.get("SINGLE_MODEL_URL", "").strip() or None


def batch_model_url(env: Mapping[str, str] = os.environ) -> str | None:
    """``BATCH_MODEL_URL``: a separately running ``BatchModel``; unset means a child process."""
    return env.get("BATCH_MODEL_URL", "").strip() or None


def max_batch_size(env: Mapping[str, str] = os.environ) -> int:
    """``ADMISSIONS_MAX_BATCH_SIZE``: most rows one ``/predict_batch`` request may carry."""
    return _positive_int(env, "ADMISSIONS_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE)


def max_job_size(env: Mapping[str, str] = os.environ) -> int:
    """``ADMISSIONS_MAX_JOB_SIZE``: most rows one batch job may carry."""
    return _positive_int(env, "ADMISSIONS_MAX_JOB_SIZE", DEFAULT_MAX_JOB_SIZE)


def max_csv_batch_size(env: Mapping[str, str] = os.environ) -> int:
    """``ADMISSIONS_MAX_CSV_BATCH_SIZE``: most rows one CSV ``/predict_batch`` request may carry."""
    return _positive_int(env, "ADMISSIONS_MAX_CSV_BATCH_SIZE", DEFAULT_MAX_CSV_BATCH_SIZE)


def max_csv_job_size(env: Mapping[str, str] = os.environ) -> int:
    """``ADMISSIONS_MAX_CSV_JOB_SIZE``: most rows one CSV batch job may carry."""
    return _positive_int(env, "ADMISSIONS_MAX_CSV_JOB_SIZE", DEFAULT_MAX_CSV_JOB_SIZE)


DEFAULT_BODY_LIMIT = 64 * 1024
SMALL_BODY_LIMIT = 4 * 1024  # a login or one applicant is ~200 bytes
BYTES_PER_ROW = 256  # one applicant in a batch is ~140 bytes compact, ~200 pretty-printed
OUTCOME_BYTES = 128  # {"prediction_id": "<23 hex>-<row>", "outcome": 0.5} is ~60 bytes
CSV_BYTES_PER_ROW = 64  # a CSV line is ~25 bytes ("320,110,4,4.5,4.0,9.1,1")


def body_limits(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The most bytes each POST route reads; larger bodies get 413 before they are read."""
    return {
        "/login": SMALL_BODY_LIMIT,
        "/predict": SMALL_BODY_LIMIT,
        "/predict_batch": max_batch_size(env) * BYTES_PER_ROW + SMALL_BODY_LIMIT,
        "/jobs": max_job_size(env) * BYTES_PER_ROW + SMALL_BODY_LIMIT,
        "/outcomes": MAX_OUTCOMES * OUTCOME_BYTES + SMALL_BODY_LIMIT,
    }


def csv_body_limits(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The most bytes a CSV body may have, for the routes that take CSV."""
    return {
        "/predict_batch": max_csv_batch_size(env) * CSV_BYTES_PER_ROW + SMALL_BODY_LIMIT,
        "/jobs": max_csv_job_size(env) * CSV_BYTES_PER_ROW + SMALL_BODY_LIMIT,
        "/outcomes": MAX_OUTCOMES * CSV_BYTES_PER_ROW + SMALL_BODY_LIMIT,
    }


def api_workers(env: Mapping[str, str] = os.environ) -> int:
    """``ADMISSIONS_API_WORKERS``: API worker processes (default 2, one per core here; in a container
    with a CPU limit, one per CPU of it)."""
    # Unset: one per CPU of the container's quota, at most the default (service/container_limits.py).
    workers = _positive_int(env, "ADMISSIONS_API_WORKERS", container_limits.default_workers(DEFAULT_API_WORKERS))
    if workers > MAX_API_WORKERS:
        raise ConfigurationError(f"ADMISSIONS_API_WORKERS must be at most {MAX_API_WORKERS}, not {workers}")
    return workers


def memory_budget_mb(env: Mapping[str, str] = os.environ) -> int | None:
    """``ADMISSIONS_MEMORY_BUDGET_MB``: what the request bodies one API worker holds at once may cost in
    memory; unset, it is derived from the container's memory limit (service/middleware/memory_budget.py)."""
    if not env.get("ADMISSIONS_MEMORY_BUDGET_MB", "").strip():
        return None
    return _positive_int(env, "ADMISSIONS_MEMORY_BUDGET_MB", 1)


def dev_mode(env: Mapping[str, str] = os.environ) -> bool:
    """``ADMISSIONS_DEV_MODE=1`` allows an ephemeral JWT secret (tokens die with the process)."""
    return env.get("ADMISSIONS_DEV_MODE", "").strip().lower() in _TRUE


def load(env: Mapping[str, str] = os.environ) -> Settings:
    """The run-time settings, or a :class:`ConfigurationError` saying which variable is wrong."""
    secret, ephemeral = _jwt_secret(env)
    return Settings(
        jwt_secret=secret,
        ephemeral_secret=ephemeral,
        token_lifetime_s=round(_token_minutes(env) * 60),
        issuer=env.get("JWT_ISSUER", "").strip() or DEFAULT_ISSUER,
        audience=env.get("JWT_AUDIENCE", "").strip() or DEFAULT_AUDIENCE,
        users_file=_path(env, "ADMISSIONS_USERS_FILE", DEFAULT_VAR_DIR / "users.json"),
        jobs_db=_path(env, "ADMISSIONS_JOBS_DB", DEFAULT_VAR_DIR / "jobs.sqlite"),
        jobs_url=_jobs_url(env),
        max_batch_size=max_batch_size(env),
        max_job_size=max_job_size(env),
        max_csv_batch_size=max_csv_batch_size(env),
        max_csv_job_size=max_csv_job_size(env),
        job_lease_s=_positive_float(env, "ADMISSIONS_JOB_LEASE_S", DEFAULT_JOB_LEASE_S),
        job_retry_window_s=_positive_float(env, "ADMISSIONS_JOB_RETRY_WINDOW_S", DEFAULT_JOB_RETRY_WINDOW_S),
        max_active_jobs=_positive_int(env, "ADMISSIONS_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS),
        login_limits=(
            _positive_int(env, "ADMISSIONS_LOGIN_FAILURES_PER_PAIR", 5),
            _positive_int(env, "ADMISSIONS_LOGIN_FAILURES_PER_ADDRESS", 20),
            _positive_int(env, "ADMISSIONS_LOGIN_FAILURES_PER_USER", 50),
            _positive_float(env, "ADMISSIONS_LOGIN_WINDOW_S", 300.0),
        ),
        trusted_proxies=trusted_proxies(env),
        memory_budget_mb=memory_budget_mb(env),
        prediction_log=_on_off(env, "ADMISSIONS_PREDICTION_LOG", default=True),
        prediction_log_days=_positive_float(env, "ADMISSIONS_PREDICTION_LOG_DAYS", DEFAULT_PREDICTION_LOG_DAYS),
        drift_window=_positive_int(env, "ADMISSIONS_DRIFT_WINDOW", DEFAULT_DRIFT_WINDOW),
    )


def prepare(env: MutableMapping[str, str] = os.environ) -> Settings:
    """Check the settings once, before any worker starts; in dev mode, share one ephemeral secret.

    Workers inherit ``env``, so writing the generated secret there gives every worker (and every
    restart of one) the same key for the life of the server.
    """
    api_workers(env)  # read when the service is declared (see declared): checked here
    loaded = load(env)
    if loaded.ephemeral_secret:
        env["JWT_SECRET_KEY"] = loaded.jwt_secret.decode()
    # uvicorn (which BentoML runs with its defaults) believes X-Forwarded-For from FORWARDED_ALLOW_IPS,
    # 127.0.0.1 and ::1 when unset: any local client could then pick the address its failed logins are
    # counted under. Only the configured proxies are trusted; none by default.
    env["FORWARDED_ALLOW_IPS"] = ",".join(loaded.trusted_proxies)
    return loaded


def trusted_proxies(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """``ADMISSIONS_TRUSTED_PROXIES``: the reverse proxies (addresses or networks, comma-separated) whose
    ``X-Forwarded-For`` header names the client; empty (the default) trusts no one."""
    if env.get("FORWARDED_ALLOW_IPS", "").strip() and not env.get("ADMISSIONS_TRUSTED_PROXIES", "").strip():
        raise ConfigurationError(
            "FORWARDED_ALLOW_IPS is set but ADMISSIONS_TRUSTED_PROXIES is not: name the proxies in "
            "ADMISSIONS_TRUSTED_PROXIES (the service sets uvicorn's FORWARDED_ALLOW_IPS from it)"
        )
    proxies = []
    for item in filter(None, (part.strip() for part in env.get("ADMISSIONS_TRUSTED_PROXIES", "").split(","))):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigurationError(
                f"ADMISSIONS_TRUSTED_PROXIES must list IP addresses or networks (10.0.0.5, 10.0.0.0/24), not {item!r}"
            ) from None
        if network.prefixlen == 0:
            raise ConfigurationError(
                f"ADMISSIONS_TRUSTED_PROXIES must not trust every address ({item}): any client could then "
                "choose the address its failed logins are counted under"
            )
        proxies.append(str(network) if network.num_addresses > 1 else str(network.network_address))
    return tuple(proxies)


def internal_token(env: Mapping[str, str] = os.environ) -> str | None:
    """What the API sends the model services to prove a call is its own: derived from JWT_SECRET_KEY,
    which every service of a deployment shares (compose's .env, the Kubernetes Secret, or the
    environment ``bentoml serve`` gives its child processes). None when no secret is set."""
    secret = env.get("JWT_SECRET_KEY", "")
    if not secret:
        return None
    return hmac.new(secret.encode(), b"admissions: calls from the API service", hashlib.sha256).hexdigest()


def users_file(env: Mapping[str, str] = os.environ) -> Path:
    """``ADMISSIONS_USERS_FILE`` alone, for the users command (which needs no JWT secret)."""
    return _path(env, "ADMISSIONS_USERS_FILE", DEFAULT_VAR_DIR / "users.json")


def _jobs_url(env: Mapping[str, str]) -> str | None:
    """``ADMISSIONS_JOBS_URL``: a database URL, or None for the SQLite file of ``ADMISSIONS_JOBS_DB``.
    Anything without a scheme is refused: taken as a file name, it would quietly give this server jobs
    of its own instead of the shared ones. Never echoed: a URL missing its scheme may hold a password."""
    url = env.get("ADMISSIONS_JOBS_URL", "").strip()
    if url and "://" not in url:
        raise ConfigurationError(
            "ADMISSIONS_JOBS_URL is not a database URL (it has no scheme://): set it like "
            "postgresql://user:password@host:5432/admissions, or leave it empty and set ADMISSIONS_JOBS_DB "
            "for a SQLite file"
        )
    if url:
        dburl.check(url)
    return url or None


def _jwt_secret(env: Mapping[str, str]) -> tuple[bytes, bool]:
    raw = env.get("JWT_SECRET_KEY", "")
    if not raw and dev_mode(env):
        return secrets.token_urlsafe(48).encode(), True
    if not raw:
        raise ConfigurationError(
            "JWT_SECRET_KEY is not set: export a random secret of at least 32 bytes "
            "(e.g. JWT_SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(48))')\"), "
            "or set ADMISSIONS_DEV_MODE=1 for an ephemeral development secret"
        )
    secret = raw.encode()
    how = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
    if "secrets.token" in raw or "$(" in raw:
        raise ConfigurationError(
            "JWT_SECRET_KEY holds the command that makes a secret, not its output (a .env file does not run "
            f"$(...)): run the command and paste what it prints; {how}"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"JWT_SECRET_KEY is {len(secret)} bytes long; HS256 needs at least {MIN_SECRET_BYTES} random bytes ({how})"
        )
    bits = secret_strength.estimated_bits(raw)
    if bits < secret_strength.MIN_BITS:
        raise ConfigurationError(
            f"JWT_SECRET_KEY is too weak: guessable in about 2^{bits:.0f} tries (words, sequences, keyboard runs "
            f"or repeats), and at least 2^{secret_strength.MIN_BITS:.0f} are needed; {how}"
        )
    return secret, False


def _token_minutes(env: Mapping[str, str]) -> float:
    minutes = _positive_float(env, "JWT_LIFETIME_MINUTES", DEFAULT_TOKEN_MINUTES)
    if minutes > MAX_TOKEN_MINUTES:
        raise ConfigurationError(
            f"JWT_LIFETIME_MINUTES must be at most {MAX_TOKEN_MINUTES:.0f} (a day), not {minutes:g}"
        )
    return minutes


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name, "").strip()
    return Path(value).expanduser() if value else default


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ConfigurationError(f"{name} must be at least 1, not {number}")
    return number


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ConfigurationError(f"{name} must be on or off, not {value!r}")


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigurationError(f"{name} must be a positive number, not {value}")
    return number
