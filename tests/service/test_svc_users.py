"""The users file and its command: argon2 hashes only, atomic 0600 writes, one-line errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher, extract_parameters

from service import users

ROOT = Path(__file__).resolve().parents[2]


def user_id(path: Path, name: str, password: str) -> str | None:
    """The id of the user the password authenticates, or None."""
    user = users.authenticate_user(path, name, password)
    return user.id if user else None


def test_added_user_authenticates_and_only_a_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "correct horse")
    stored = json.loads(path.read_text())["users"]["alice"]
    assert stored["hash"].startswith("$argon2id$") and stored["id"].startswith("u-")
    assert "correct horse" not in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert user_id(path, "alice", "correct horse")
    assert not user_id(path, "alice", "wrong horse")
    assert not user_id(path, "bob", "correct horse")


def test_missing_file_means_no_users(tmp_path: Path) -> None:
    assert users.load(tmp_path / "absent.json") == {}
    assert not user_id(tmp_path / "absent.json", "alice", "whatever1")


def test_duplicate_needs_replace(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    with pytest.raises(users.UsersFileError, match="already exists"):
        users.add(path, "alice", "password-2")
    users.add(path, "alice", "password-2", replace=True)
    assert user_id(path, "alice", "password-2")
    assert not user_id(path, "alice", "password-1")


def test_a_user_keeps_their_id_across_a_new_password_but_a_new_user_of_that_name_does_not(tmp_path: Path) -> None:
    """Jobs are owned by the id: a new user given a removed user's name must not read their jobs."""
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    first = user_id(path, "alice", "password-1")
    users.add(path, "alice", "password-2", replace=True)
    assert user_id(path, "alice", "password-2") == first
    users.remove(path, "alice")
    users.add(path, "alice", "password-3")
    again = user_id(path, "alice", "password-3")
    assert again is not None and first is not None and again != first


def test_first_format_entries_keep_the_name_as_their_id(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    legacy = {"users": {"alice": json.loads(path.read_text())["users"]["alice"]["hash"]}}
    path.write_text(json.dumps(legacy))
    assert user_id(path, "alice", "password-1") == "alice"
    users.add(path, "bob", "password-2")  # the next save writes the new form, keeping alice's id
    assert json.loads(path.read_text())["users"]["alice"]["id"] == "alice"


def test_remove(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    users.remove(path, "alice")
    assert users.load(path) == {}
    with pytest.raises(users.UsersFileError, match="no user"):
        users.remove(path, "alice")


@pytest.mark.parametrize(("name", "password", "message"), [
    ("alice", "short", "too short"),
    ("", "password-1", "invalid user name"),
    ("a b", "password-1", "invalid user name"),
    ("-x", "password-1", "invalid user name"),
])  # fmt: skip
def test_bad_input_is_refused(tmp_path: Path, name: str, password: str, message: str) -> None:
    with pytest.raises(users.UsersFileError, match=message):
        users.add(tmp_path / "users.json", name, password)
    assert not (tmp_path / "users.json").exists()


def test_corrupt_file_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(users.UsersFileError, match="cannot read"):
        users.load(path)
    path.write_text('{"users": ["alice"]}')
    with pytest.raises(users.UsersFileError, match="not of the form"):
        users.load(path)


def run_command(tmp_path: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ADMISSIONS_USERS_FILE": str(tmp_path / "users.json")}
    command = [sys.executable, "-m", "service.users", *args]
    return subprocess.run(command, input=stdin, env=env, cwd=ROOT, capture_output=True, text=True, check=False)


def test_command_reads_the_password_from_stdin(tmp_path: Path) -> None:
    result = run_command(tmp_path, "add", "carol", stdin="a long password\n")
    assert result.returncode == 0, result.stderr
    assert user_id(tmp_path / "users.json", "carol", "a long password")
    listed = run_command(tmp_path, "list", stdin="")
    assert listed.stdout.split() == ["carol"]


@pytest.mark.parametrize("stdin", ["", "\n", "short\n"])
def test_command_refuses_a_bad_password_in_one_line(tmp_path: Path, stdin: str) -> None:
    result = run_command(tmp_path, "add", "carol", stdin=stdin)
    assert result.returncode == 2
    assert result.stderr.startswith("error: password too short")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_a_new_password_or_removal_revokes_the_users_tokens(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    directory = users.Directory(path)
    user = users.authenticate_user(path, "alice", "password-1")
    assert user is not None and directory.generation(user.id) == user.generation == 0
    users.add(path, "alice", "password-2", replace=True)
    assert directory.generation(user.id) == 1  # a token of generation 0 is now revoked
    users.remove(path, "alice")
    assert directory.generation(user.id) is None


def test_an_unknown_name_costs_a_hash_like_a_wrong_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user enumeration by timing: an unknown name is verified against a dummy hash."""
    path = tmp_path / "users.json"
    users.add(path, "alice", "password-1")
    verified: list[str] = []
    real = users._HASHER

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            verified.append(stored)
            return bool(real.verify(stored, password))

    monkeypatch.setattr(users, "_HASHER", Counting())
    assert user_id(path, "nobody", "password-1") is None
    assert user_id(path, "alice", "wrong-one") is None
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)


def test_an_unknown_name_costs_the_work_factors_the_stored_users_were_hashed_with(tmp_path: Path) -> None:
    """Users hashed with other work factors (older argon2 defaults; the test suite's cheap ones): the
    dummy an unknown name is verified against is made with theirs, so it costs what they cost."""
    path = tmp_path / "users.json"
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users.save(path, {"alice": users.User(id="u-1", hash=cheap.hash("password-1"))})
    dummy = users._dummy_hash(users.load(path)["alice"].hash)
    assert extract_parameters(dummy) == extract_parameters(users.load(path)["alice"].hash)
    assert extract_parameters(users._dummy_hash()) == extract_parameters(users._HASHER.hash("x"))
    assert extract_parameters(users._dummy_hash("not a hash")) == extract_parameters(users._HASHER.hash("x"))
    assert user_id(path, "nobody", "password-1") is None
    assert user_id(path, "alice", "password-1") == "u-1"
