"""Command line: ``python -m pipeline run [TASK] [luigi options]``, ``lineage TAG``, ``runs``, ``diff A B``,
``aliases``, ``promote TAG --reason R``, ``rollback [--to TAG] --reason R``.

``run`` is Luigi's own command line (``luigi --module pipeline.tasks TASK ...``, with the exit codes
of luigi.cfg's ``[retcode]``), with logging that prints the pipeline's own errors as one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import luigi.configuration
import luigi.interface
import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import ParameterException
from luigi.task_register import TaskClassNotFoundException

from pipeline.cli.runs import LOCK_DIR, artefacts_in_use, scheduler_problem, take_process_lock
from pipeline.errors import PipelineError
from pipeline.provenance import PROJECT_ROOT

DEFAULT_TASK = "BuildBento"
log = logging.getLogger("pipeline")


class ExpectedErrorsWithoutTraceback(logging.Filter):
    """Drop the traceback from log records about the pipeline's own (expected) errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} -- {type(error).__name__}: {error}", ()
            record.exc_info = None
        return True


class ShortWorkerNames(logging.Filter):
    """Luigi names its worker with salt, host, user and pid on every task line: keep the task."""

    _WORKER = re.compile(r"Worker\(salt=[^)]*\) ")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "luigi-interface" and "Worker(salt=" in (message := record.getMessage()):
            record.msg, record.args = self._WORKER.sub("", message), ()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(ExpectedErrorsWithoutTraceback())
    handler.addFilter(ShortWorkerNames())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in ("luigi-interface", "pipeline"):
        logging.getLogger(name).setLevel(level)
    config = luigi.configuration.get_config()
    if not Path("luigi.cfg").is_file() and "LUIGI_CONFIG_PATH" not in os.environ:
        config.add_config_path(str(PROJECT_ROOT / "luigi.cfg"))  # run from another folder: same settings
    # Luigi would otherwise install its own handler with tracebacks for every failure.
    config.set("core", "no_configure_logging", "true")
    if not config.has_option("core", "lock_pid_dir"):
        config.set("core", "lock_pid_dir", str(LOCK_DIR))
    if not config.has_option("execution_summary", "summary_length"):
        config.set("execution_summary", "summary_length", "0")  # 5 families, then "...": TrainModel was hidden


def run(argv: list[str]) -> int:
    """Run Luigi's command line on the pipeline's tasks; returns luigi.cfg's [retcode] codes.

    Around Luigi's run: one sentence (no retries, no traceback) when the central scheduler is down or
    the same command already runs in this checkout, stale temporary folders removed, and a summary.
    """
    task = argv[0] if argv and not argv[0].startswith("-") else DEFAULT_TASK
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    args = ["--module", "pipeline.tasks", task, *rest]
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        with CmdlineParser.global_instance(args) as parsed:
            root, env = parsed.get_task_obj(), luigi.interface.core()
            already_running = luigi.retcodes.retcode().already_running
    except TaskClassNotFoundException:
        from pipeline.tasks import __all__ as tasks

        log.error("there is no task %r; the pipeline's tasks are %s", task, ", ".join(tasks))
        return 2
    except ParameterException as exc:  # e.g. TrainModel without --candidate
        log.error("%s", exc)
        return 2
    except ValueError as exc:  # e.g. --seed x
        log.error("a parameter has an invalid value (%s); see `python -m pipeline run %s --help`", exc, task)
        return 2
    if problem := scheduler_problem(env):
        log.error(problem)
        return 2
    if problem := take_process_lock(env):
        log.error(problem)
        return int(already_running)
    with artefacts_in_use(Path(root.artefacts_dir)) as removed:
        if removed:
            log.info(
                "removed %d temporary folder(s) left by a killed run: %s", len(removed), ", ".join(map(str, removed))
            )
        code = luigi_exit_code([*args, "--no-lock"])  # the lock is taken above
    from pipeline.cli.summary import summarise  # the task modules: loaded by now

    print(summarise(root, started), file=sys.stderr)
    return code


def luigi_exit_code(args: list[str]) -> int:
    try:
        luigi.retcodes.run_with_retcodes(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the pipeline up to TASK (default BuildBento)", add_help=False)
    lineage_parser = commands.add_parser("lineage", help="print the lineage of a registered model or a Bento")
    lineage_parser.add_argument(
        "tag", help="model or Bento tag, e.g. admissions:latest, admissions:1a2b3c or admissions_api:latest"
    )
    commands.add_parser("runs", help="list the registered runs, newest first (parameters that differ, scores)")
    diff_parser = commands.add_parser("diff", help="parameters and metrics that differ between two runs")
    diff_parser.add_argument("a", help="a model tag or version, e.g. admissions:1a2b3c or 1a2b3c")
    diff_parser.add_argument("b", help="the other model tag or version")
    commands.add_parser("aliases", help="the champion and challenger, and every move of them, newest first")
    promote_parser = commands.add_parser("promote", help="make a registered model champion by hand, with a reason")
    promote_parser.add_argument("tag", help="model tag or version, e.g. admissions:1a2b3c or 1a2b3c")
    promote_parser.add_argument("--reason", required=True, help="why (recorded with the move)")
    rollback_parser = commands.add_parser("rollback", help="make the previous champion (or --to TAG) champion again")
    rollback_parser.add_argument("--to", help="the model to roll back to (default: the champion before this one)")
    rollback_parser.add_argument("--reason", required=True, help="why (recorded with the move)")
    args, rest = parser.parse_known_args(argv)
    configure_logging(args.log_level)
    if args.command == "run":
        if "--help" in rest or "-h" in rest:  # Luigi's --help is 131 lines; --help-all stays Luigi's
            from pipeline.cli.help import print_help

            return print_help(rest, DEFAULT_TASK)
        return run(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from pipeline.cli import aliases
    from pipeline.cli.history import diff_table, runs_table  # imports BentoML: only when needed
    from pipeline.cli.lineage import print_lineage

    try:
        if args.command == "aliases":
            print(aliases.table())
        elif args.command == "promote":
            print(aliases.make_champion(args.tag, args.reason, "promote"))
        elif args.command == "rollback":
            print(aliases.rollback(args.reason, args.to))
        elif args.command == "runs":
            print(runs_table())
        elif args.command == "diff":
            print(diff_table(args.a, args.b))
        else:
            print_lineage(args.tag)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
