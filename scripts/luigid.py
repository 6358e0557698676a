"""Start and stop luigid, Luigi's central scheduler, whose web page is the visualiser.

``python -m scripts.luigid start|stop|status [--dir DIR] [--port PORT]`` (``make visualiser``,
``make stop-visualiser``). luigid runs in the background bound to 127.0.0.1 and is configured by
config/luigid.cfg; its state file, task-history database, logs and pid file live in DIR (var/luigid).
It lives outside pipeline/ because every file there is part of the pipeline's code version.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "luigid.cfg"
DEFAULT_DIR = ROOT / "var" / "luigid"
DEFAULT_PORT = 8082
HOST = "127.0.0.1"  # loopback only: luigid has no authentication
# Requests to our own loopback server must not go through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LuigidError(Exception):
    """luigid cannot be started or stopped; the message says why."""


@dataclass(frozen=True)
class Luigid:
    """One luigid: the port it listens on and the folder that holds everything it writes."""

    folder: Path
    port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.folder / "luigid.pid"

    @property
    def url_file(self) -> Path:
        """The URL of the running luigid, which may listen on another port than this object's."""
        return self.folder / "luigid.url"

    @property
    def log_dir(self) -> Path:
        return self.folder / "log"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.pickle"  # as named in config/luigid.cfg

    @property
    def history_db(self) -> Path:
        return self.folder / "task-history.sqlite"  # as named in config/luigid.cfg


def api(url: str, method: str, **arguments: Any) -> Any:
    """Call luigid's JSON API (``GET /api/METHOD?data={...}``, as the visualiser does)."""
    query = urllib.parse.urlencode({"data": json.dumps(arguments)})
    with _OPENER.open(f"{url}/api/{method}?{query}", timeout=10) as response:
        return json.load(response)["response"]


def running_pid(luigid: Luigid) -> int | None:
    """The pid in the pid file if that process is alive and is a luigid (pids get reused)."""
    try:
        pid = int(luigid.pid_file.read_text().strip())
        if not _alive(pid):
            return None
        proc = Path("/proc")  # where there is one (Linux), check what the process runs
        if proc.is_dir() and b"luigid" not in (proc / str(pid) / "cmdline").read_bytes():
            return None
    except (OSError, ValueError):  # no pid file, garbage in it, or the process just exited
        return None
    return pid


def start(luigid: Luigid, timeout: float = 30.0) -> int:
    """Start luigid in the background, wait until its API answers, and return its pid."""
    luigid = replace(luigid, folder=luigid.folder.resolve())  # luigid runs in that folder: paths must be absolute
    if running_pid(luigid) is not None:
        raise LuigidError(f"luigid is already running (pid file {_shown(luigid.pid_file)})")
    if _port_in_use(luigid.port):
        raise LuigidError(f"port {luigid.port} on {HOST} is in use; pick another (make visualiser LUIGID_PORT=...)")
    executable = Path(sys.executable).with_name("luigid")
    if not executable.exists():
        raise LuigidError(f"luigid is not installed next to {sys.executable}; run `make env-create`")
    try:
        luigid.log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LuigidError(f"cannot create {_shown(luigid.log_dir)}: {exc.strerror}") from exc
    command = [str(executable), "--address", HOST, "--port", str(luigid.port), "--logdir", str(luigid.log_dir)]
    # LUIGI_CONFIG_PATH is read after any luigi.cfg in the working directory, so it wins.
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(CONFIG), "LUIGID_DIR": str(luigid.folder)}
    output = luigid.log_dir / "luigid.out"  # what luigid prints before its logging starts (e.g. a crash)
    with output.open("ab") as sink:
        process = subprocess.Popen(  # a new session: Ctrl-C in the shell that started it does not stop it
            command,
            cwd=luigid.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    luigid.pid_file.write_text(f"{process.pid}\n")
    luigid.url_file.write_text(f"{luigid.url}\n")
    _wait_until_ready(luigid, process, output, timeout)
    return process.pid


def stop(luigid: Luigid, timeout: float = 30.0) -> int | None:
    """Stop luigid with SIGTERM (on which it saves its state) and wait for it to exit.

    Returns the pid it had, or None when it was not running.
    """
    pid = running_pid(luigid)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise LuigidError(
                    f"luigid (pid {pid}) did not exit within {timeout:.0f} s of SIGTERM; "
                    f"`kill -9 {pid}` stops it without saving its state"
                )
            time.sleep(0.1)
    luigid.pid_file.unlink(missing_ok=True)  # also a stale one, left by a luigid that was killed
    luigid.url_file.unlink(missing_ok=True)
    return pid


def _wait_until_ready(luigid: Luigid, process: subprocess.Popen[bytes], output: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop(luigid)  # only removes the pid and url files
            tail = "\n".join(output.read_text(errors="replace").splitlines()[-5:])
            raise LuigidError(f"luigid exited at start (code {process.returncode}); {_shown(output)} ends:\n{tail}")
        try:
            api(luigid.url, "task_list")
            return
        except (OSError, ValueError):  # not listening yet (URLError is an OSError)
            time.sleep(0.2)
    stop(luigid)
    raise LuigidError(f"luigid did not answer on {luigid.url} within {timeout:.0f} s; see {_shown(output)}")


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our own child (as in the tests): a zombie still answers kill(pid, 0).
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited but not reaped: luigid's parent is then init, which may be slow (or fail) to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"  # the state follows the "(command)" field


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex((HOST, port)) == 0


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _shown(path: Path) -> str:
    """The path relative to the working directory when it is inside it (var/luigid), else absolute."""
    path = path.resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _running_url(luigid: Luigid) -> str:
    try:
        return luigid.url_file.read_text().strip()
    except OSError:
        return luigid.url


def _start_command(luigid: Luigid) -> None:
    pid = running_pid(luigid)
    if pid is not None:
        print(f"luigid is already running (pid {pid}); visualiser: {_running_url(luigid)}")
        return
    pid = start(luigid)
    print(f"luigid started (pid {pid}); state, task history and logs in {_shown(luigid.folder)}/")
    print(f"visualiser: {luigid.url}  (past runs: {luigid.url}/history)")


def _stop_command(luigid: Luigid) -> None:
    pid = stop(luigid)
    if pid is None:
        print("luigid is not running: nothing to stop")
    else:
        print(f"luigid stopped (pid {pid}); its state is saved in {_shown(luigid.state_file)}")


def _status_command(luigid: Luigid) -> None:
    pid = running_pid(luigid)
    print(f"luigid is running (pid {pid}): {_running_url(luigid)}" if pid else "luigid is not running")


COMMANDS: dict[str, Callable[[Luigid], None]] = {
    "start": _start_command,
    "stop": _stop_command,
    "status": _status_command,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.luigid", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="luigid's folder (default: var/luigid)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port to listen on (start only)")
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](Luigid(args.dir, args.port))
    except LuigidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
