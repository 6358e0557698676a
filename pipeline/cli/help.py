"""``python -m pipeline run [TASK] --help``: the task's parameters once each, and how to schedule a run.

Luigi's own ``--help`` lists every parameter twice (``--seed`` and ``--BuildBento-seed``) inside a
131-line usage block, and ``--help-all`` is over a thousand lines; both stay available (``--help-all``).
"""

from __future__ import annotations

import logging
from typing import Any

import luigi
from luigi.task_register import Register, TaskClassNotFoundException

log = logging.getLogger("pipeline")
_METAVAR = {luigi.IntParameter: "N", luigi.FloatParameter: "X", luigi.ListParameter: "JSON"}
_SCHEDULING = [
    ("--local-scheduler", "run without luigid (what `make pipeline` does by default)"),
    ("--scheduler-host HOST", "the central scheduler's host, e.g. `make visualiser`'s 127.0.0.1"),
    ("--scheduler-port PORT", "and its port (`make visualiser`: 8082)"),
    ("--workers N", "tasks run side by side (`make pipeline`: 2)"),
]


def _metavar(param: Any) -> str:
    return next((name for kind, name in _METAVAR.items() if isinstance(param, kind)), "TEXT")


def _default(param: Any, task: str, name: str) -> str:
    """The value the task gets when the option is left out (luigi.cfg's, else the parameter's default)."""
    if not param.has_task_value(task, name):  # no default: the task cannot run without it
        return " (required)"
    default = param.task_value(task, name)
    return f" (default {param.serialize(default)})" if default not in ("", None) else ""


def short_help(task: str) -> str:
    """The help of ``task``; raises TaskClassNotFoundException for an unknown name."""
    import pipeline.tasks

    cls = Register.get_task_cls(task)
    options = [
        (f"--{name.replace('_', '-')} {_metavar(param)}", f"{param.description or ''}{_default(param, task, name)}")
        for name, param in cls.get_params()
    ]
    width = max(len(flag) for flag, _ in options + _SCHEDULING) + 2
    lines = [
        "usage: python -m pipeline run [TASK] [--PARAMETER VALUE ...] [--local-scheduler] [--workers N]",
        "",
        f"Runs {task} and every task it needs that is not complete yet (default task: BuildBento).",
        f"Tasks: {', '.join(pipeline.tasks.__all__)}.",
        "",
        f"Parameters of {task} (passed on to the tasks it needs):",
        *(f"  {flag:<{width}}{text}" for flag, text in options),
        "",
        "Scheduling:",
        *(f"  {flag:<{width}}{text}" for flag, text in _SCHEDULING),
        "",
        f"Every Luigi option (over a thousand lines): python -m pipeline run {task} --help-all",
    ]
    return "\n".join(lines)


def print_help(argv: list[str], default_task: str) -> int:
    """``run``'s arguments as pipeline.cli.main.run reads them: the task first, unless it is left out."""
    task = argv[0] if argv and not argv[0].startswith("-") else default_task
    try:
        print(short_help(task))
    except TaskClassNotFoundException:
        import pipeline.tasks

        log.error("there is no task %r; the pipeline's tasks are %s", task, ", ".join(pipeline.tasks.__all__))
        return 2
    return 0
