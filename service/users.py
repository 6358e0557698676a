"""The users file: user names and argon2id password hashes, nothing else; plus the command that edits it.

The file is JSON (``{"users": {"NAME": "$argon2id$..."}}``), written atomically with mode 0600, and
read at every login so that users added while the service runs can log in without a restart.

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
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from service import settings
from service.errors import ConfigurationError, ServiceError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against for unknown names, so their logins cost as much as a wrong password."""
    return _HASHER.hash("not a real password; compared against to keep timing uniform")


class UsersFileError(ServiceError):
    """The users file or a command argument is unusable; the message says how."""


def load(path: Path) -> dict[str, str]:
    """User name -> hash; a missing file is an empty user list, a corrupt one an error."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsersFileError(f"cannot read users file {path}: {exc}") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise UsersFileError(f"users file {path} is not of the form {{'users': {{name: hash}}}}")
    return users


def save(path: Path, users: dict[str, str]) -> None:
    """Write atomically (temp file + rename) and readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"users": dict(sorted(users.items()))}, handle, indent=2)
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
    users[name] = _HASHER.hash(password)
    save(path, users)


def remove(path: Path, name: str) -> None:
    users = load(path)
    if users.pop(name, None) is None:
        raise UsersFileError(f"no user {name!r} in {path}")
    save(path, users)


def authenticate(path: Path, name: str, password: str) -> bool:
    """Whether the password matches the stored hash; takes about as long whether or not the user exists."""
    stored = load(path).get(name)
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


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
