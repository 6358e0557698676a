"""Kept for tests/docker until it imports tests.support (the helpers live there now)."""

from tests.support.ports import free_port
from tests.support.processes import running, stop, wait_ready

__all__ = ["free_port", "running", "stop", "wait_ready"]
