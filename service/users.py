"""The users file: user names, stable ids and argon2id password hashes; plus the command that edits it.

The file is JSON (``{"users": {"NAME": {"id": "u-...", "hash": "$argon2id$..."}}}``), written atomically
with mode 0600, and read at every login so that users added while the service runs can log in without a
restart. The id, not the name, owns a user's jobs: a new user given a removed user's name gets a new id
and cannot read the old user's jobs. Entries of the first format (``"NAME": "$argon2id$..."``) are read
with the name as their id, which keeps their jobs; they are rewritten in the new form at the next save.

    python -m service.users add NAME      # reads the password from stdin (prompts on a terminal)
    python -m service.users remove NAME
    python -m service.users list
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import re
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from service import settings
from service.errors import ConfigurationError, ServiceError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()


def _dummy_hash(like: str | None = None) -> str:
    """Verified against for unknown names, so their logins cost as much as a wrong password: made with
    the work factors of ``like`` (a stored user's hash; users hashed before a change of argon2's
    defaults keep theirs), else with this version's."""
    try:
        found = extract_parameters(like) if like else None
    except InvalidHashError:
        found = None
    return _dummy_hash_with((found.time_cost, found.memory_cost, found.parallelism) if found else None)


@functools.cache
def _dummy_hash_with(work: tuple[int, int, int] | None) -> str:
    hasher = PasswordHasher(*work) if work else _HASHER  # (time_cost, memory_cost, parallelism)
    return hasher.hash("not a real password; compared against to keep timing uniform")


class UsersFileError(ServiceError):
    """The users file or a command argument is unusable; the message says how."""


@dataclass(frozen=True)
class User:
    id: str
    hash: str
    generation: int = 0  # raised by every new password: tokens of an older generation are revoked


def load(path: Path) -> dict[str, User]:
    """User name -> user; a missing file is an empty user list, a corrupt one an error."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsersFileError(f"cannot read users file {path}: {exc}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise UsersFileError(f"users file {path} is not of the form {{'users': {{name: {{'id': ..., 'hash': ...}}}}}}")
    loaded = {}
    for name, entry in users.items():
        if isinstance(entry, str):  # the first format: the name was the id
            loaded[name] = User(id=name, hash=entry)
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("hash"), str):
            loaded[name] = User(id=entry["id"], hash=entry["hash"], generation=int(entry.get("generation", 0)))
        else:
            raise UsersFileError(f"users file {path}: the entry of user {name!r} has no string 'id' and 'hash'")
    return loaded


def save(path: Path, users: dict[str, User]) -> None:
    """Write atomically (temp file + rename) and readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            entries = {
                name: {"id": user.id, "hash": user.hash, "generation": user.generation}
                for name, user in sorted(users.items())
            }
            json.dump({"users": entries}, handle, indent=2)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add(path: Path, name: str, password: str, replace: bool = False) -> None:
    """Add (or with ``replace`` re-hash) a user; validates name and password first."""
    if not NAME_PATTERN.match(name):
        raise UsersFileError(f"invalid user name {name!r}: use 1-64 letters, digits and _.@- (letter or digit first)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersFileError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    users = load(path)
    if name in users and not replace:
        raise UsersFileError(f"user {name!r} already exists (use --replace to set a new password)")
    old = users.get(name)
    kept_id = old.id if old else f"u-{uuid.uuid4().hex}"  # a new password keeps the jobs...
    generation = old.generation + 1 if old else 0  # ...and revokes the tokens issued before it
    users[name] = User(id=kept_id, hash=_HASHER.hash(password), generation=generation)
    save(path, users)


def remove(path: Path, name: str) -> None:
    users = load(path)
    if users.pop(name, None) is None:
        raise UsersFileError(f"no user {name!r} in {path}")
    save(path, users)


def authenticate_user(path: Path, name: str, password: str) -> User | None:
    """The user if the password matches; takes about as long whether or not the user exists."""
    known = load(path)
    stored = known.get(name)
    like = next(iter(known.values())).hash if known else None
    try:
        matches = _HASHER.verify(stored.hash if stored else _dummy_hash(like), password)
    except (VerificationError, InvalidHashError):
        return None
    return stored if matches and stored is not None else None


class Directory:
    """The users file by id, re-read only when the file changes: checked on every request (a stat,
    ~2 µs) so that removing a user or setting a new password revokes their tokens at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._generations: dict[str, int] = {}

    def generation(self, user_id: str) -> int | None:
        """The user's current token generation; None if no user has that id (removed)."""
        try:
            info = self.path.stat()
            seen = (info.st_mtime_ns, info.st_size)
        except FileNotFoundError:
            seen = (0, 0)
        if seen != self._seen:
            self._generations = {user.id: user.generation for user in load(self.path).values()}
            self._seen = seen
        return self._generations.get(user_id)


def _read_password() -> str:
    """Prompt twice on a terminal; otherwise the first line of stdin (so it can be piped)."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise UsersFileError("passwords do not match")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.users", description="manage the service's users file")
    commands = parser.add_subparsers(dest="command", required=True)
    adding = commands.add_parser("add", help="add a user; the password is read from stdin")
    adding.add_argument("name")
    adding.add_argument("--replace", action="store_true", help="set a new password for an existing user")
    removing = commands.add_parser("remove", help="remove a user")
    removing.add_argument("name")
    commands.add_parser("list", help="list user names")
    args = parser.parse_args(argv)
    try:
        path = settings.users_file()
        if args.command == "add":
            add(path, args.name, _read_password(), replace=args.replace)
            print(f"user {args.name!r} saved in {path}")
        elif args.command == "remove":
            remove(path, args.name)
            print(f"user {args.name!r} removed from {path}")
        else:
            print("\n".join(load(path)))
    except (ServiceError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
