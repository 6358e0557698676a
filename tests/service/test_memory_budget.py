"""service/container_limits.py and service/middleware/memory_budget.py: the limits read from cgroup
files (v1 and v2 layouts, written here as the kernel writes them), the budget's arithmetic, and the
middleware's answers. Under a real cgroup limit,
with real concurrent maximum-size bodies: tests/docker/test_stack_memory.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from service import container_limits, settings
from service.errors import ConfigurationError
from service.middleware import memory_budget

MIB = container_limits.MIB


def cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    return tmp_path


def test_limits_from_cgroup_v2(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"memory.max": str(768 * MIB), "cpu.max": "100000 100000"})
    assert container_limits.memory_limit(root) == 768 * MIB
    assert container_limits.cpu_limit(root) == 1.0
    assert container_limits.default_workers(2, root) == 1


def test_limits_from_cgroup_v1(tmp_path: Path) -> None:
    files = {"memory/memory.limit_in_bytes": str(805306368), "cpu/cpu.cfs_quota_us": "150000",
             "cpu/cpu.cfs_period_us": "100000"}  # fmt: skip
    root = cgroup(tmp_path, files)
    assert container_limits.memory_limit(root) == 805306368
    assert container_limits.default_workers(2, root) == 2  # 1.5 CPUs: rounded up


@pytest.mark.parametrize(
    "files",
    [{"memory.max": "max", "cpu.max": "max 100000"},
     {"memory/memory.limit_in_bytes": "9223372036854771712", "cpu/cpu.cfs_quota_us": "-1",
      "cpu/cpu.cfs_period_us": "100000"},
     {}],
)  # fmt: skip
def test_no_limit_means_no_budget_and_the_default_workers(tmp_path: Path, files: dict[str, str]) -> None:
    root = cgroup(tmp_path, files)
    assert container_limits.memory_limit(root) is None and container_limits.cpu_limit(root) is None
    assert container_limits.per_worker_bytes(2, None, root) is None
    assert container_limits.default_workers(2, root) == 2
    assert container_limits.per_worker_bytes(2, 300, root) == 300 * MIB  # the setting needs no limit


def test_the_budget_of_a_768_mb_one_cpu_container(tmp_path: Path) -> None:
    root = cgroup(tmp_path, {"memory.max": str(768 * MIB)})
    expected = (768 - 128 - 192) * MIB * container_limits.SAFETY
    assert container_limits.per_worker_bytes(1, None, root) == int(expected)
    # Room for the largest bodies of the default limits, as bench/batch_throughput.py writes them: a
    # 100,000-row CSV batch (2,457,753 bytes) and a 400,000-row CSV job (9,831,379 bytes) at once.
    assert (
        memory_budget.cost("/predict_batch", True, 2_457_753) + memory_budget.cost("/jobs", True, 9_831_379) < expected
    )


def test_the_setting_is_checked() -> None:
    assert settings.memory_budget_mb({}) is None
    assert settings.memory_budget_mb({"ADMISSIONS_MEMORY_BUDGET_MB": "512"}) == 512
    with pytest.raises(ConfigurationError, match="ADMISSIONS_MEMORY_BUDGET_MB must be a whole number"):
        settings.memory_budget_mb({"ADMISSIONS_MEMORY_BUDGET_MB": "lots"})


def test_a_lone_body_is_admitted_whatever_its_cost_and_others_only_within_the_budget() -> None:
    budget = memory_budget.Budget(100)
    assert budget.take(150)  # alone: the route's size limit is what bounds it
    assert not budget.take(1)
    budget.give(150)
    assert budget.take(60) and budget.take(40) and not budget.take(1)
    budget.give(60)
    assert budget.take(50) and budget.reserved == 90


def test_the_middleware_refuses_with_503_and_retry_after_and_gives_back_what_it_took() -> None:
    budget = memory_budget.Budget(memory_budget.cost("/predict_batch", True, 1000) + 10)
    release = asyncio.Event()
    admitted: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        admitted.append(budget.reserved)
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = memory_budget.MemoryBudget(app, lambda: budget, limits={"/predict_batch": 10**6}, csv_limits={})

    async def request(sent: list[dict[str, Any]]) -> None:
        scope = {"type": "http", "method": "POST", "path": "/predict_batch",
                 "headers": [(b"content-type", b"text/csv"), (b"content-length", b"1000")]}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"x" * 1000, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await middleware(scope, receive, send)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        first: list[dict[str, Any]] = []
        second: list[dict[str, Any]] = []
        running = asyncio.create_task(request(first))
        await asyncio.sleep(0)
        await request(second)  # the first holds the budget
        release.set()
        await running
        return first, second

    first, second = asyncio.run(scenario())
    assert first[0]["status"] == 200
    assert second[0]["status"] == 503 and (b"retry-after", b"2") in second[0]["headers"]
    assert budget.reserved == 0 and budget.admitted == 0 and len(admitted) == 1


def test_a_job_waits_for_the_bodies_in_flight_and_no_body_is_admitted_past_it() -> None:
    budget = memory_budget.Budget(100)

    async def scenario() -> None:
        assert budget.take(60)
        holding = asyncio.create_task(budget.hold(70))
        await asyncio.sleep(memory_budget.HOLD_POLL_S * 3)
        assert not holding.done()  # 60 + 70 > 100: the job waits
        assert not budget.take(10)  # and no body gets in ahead of it
        budget.give(60)
        await asyncio.wait_for(holding, timeout=5)
        assert budget.reserved == 70 and budget.wanted == 0
        assert budget.take(30) and not budget.take(1)

    asyncio.run(scenario())


def test_a_job_alone_is_held_whatever_its_cost_and_a_cancelled_wait_leaves_nothing_behind() -> None:
    budget = memory_budget.Budget(100)

    async def scenario() -> None:
        await asyncio.wait_for(budget.hold(500), timeout=5)  # accepted work runs, alone if it must
        assert not budget.take(1)
        budget.give(500)
        assert budget.take(40)
        waiting = asyncio.create_task(budget.hold(90))
        await asyncio.sleep(memory_budget.HOLD_POLL_S * 2)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert (budget.reserved, budget.admitted, budget.wanted) == (40, 1, 0)

    asyncio.run(scenario())
