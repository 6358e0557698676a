"""Command line: ``python -m pipeline run [TASK] [luigi options]`` and ``python -m pipeline lineage TAG``.

``run`` is Luigi's own command line (``luigi --module pipeline.tasks TASK ...``, with the exit codes
of luigi.cfg's ``[retcode]``), with logging that prints the pipeline's own errors as one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

import luigi.configuration
import luigi.retcodes

from pipeline.errors import PipelineError

DEFAULT_TASK = "BuildBento"


class ExpectedErrorsWithoutTraceback(logging.Filter):
    """Drop the traceback from log records about the pipeline's own (expected) errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PipelineError):
            error = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()} -- {type(error).__name__}: {error}", ()
            record.exc_info = None
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(ExpectedErrorsWithoutTraceback())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    for name in ("luigi-interface", "pipeline"):
        logging.getLogger(name).setLevel(level)
    # Luigi would otherwise install its own handler with tracebacks for every failure.
    luigi.configuration.get_config().set("core", "no_configure_logging", "true")


def run(argv: list[str]) -> None:
    """Run Luigi's command line on the pipeline's tasks; exits with luigi.cfg's [retcode] codes."""
    task = argv[0] if argv and not argv[0].startswith("-") else DEFAULT_TASK
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    luigi.retcodes.run_with_retcodes(["--module", "pipeline.tasks", task, *rest])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the pipeline up to TASK (default BuildBento)", add_help=False)
    lineage_parser = commands.add_parser("lineage", help="print a registered model's lineage")
    lineage_parser.add_argument("tag", help="model tag, e.g. admissions:1a2b3c or admissions:latest")
    args, rest = parser.parse_known_args(argv)
    configure_logging(args.log_level)
    if args.command == "run":
        run(rest)
        return 0
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from pipeline.lineage import print_lineage  # imports BentoML: only when needed

    try:
        print_lineage(args.tag)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
