"""Export the prediction log (service/predlog.py) as CSV: ``make export-predictions OUT=file.csv``.

Runs where the jobs database is reachable, with the service's configuration (``ADMISSIONS_JOBS_URL`` or
``ADMISSIONS_JOBS_DB``); who may run it: docs/security.md, "The prediction log".
"""

from __future__ import annotations

import os
import sys

from sqlalchemy.engine import Engine

from service import settings
from service.errors import ConfigurationError, JobStoreUnavailableError
from service.jobs import JobStore
from service.predlog import EXPORT_COLUMNS, PredictionLog, export_rows


def _moment(text: str) -> float:
    """An ISO date or time (UTC when it names no zone) as unix time."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time (e.g. 2026-12-01 or 2026-12-01T08:00)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None, engine: Engine | None = None) -> int:
    """``python -m service.log_export [--since ISO] [--until ISO] [--model TAG] --out FILE.csv``: the
    logged predictions (with their outcomes) of the jobs database the service is configured with."""
    import argparse
    import contextlib
    import csv

    parser = argparse.ArgumentParser(
        prog="python -m service.log_export", description="The prediction log as CSV, one row per prediction."
    )
    parser.add_argument("--since", help="predictions made at or after this time (ISO, UTC by default)")
    parser.add_argument("--until", help="... and before this time")
    parser.add_argument("--model", help="only this model's predictions (a tag, e.g. admissions:1a2b3c)")
    parser.add_argument("--out", required=True, help="the CSV file to write ('-': standard output)")
    args = parser.parse_args(argv)
    try:
        start = _moment(args.since) if args.since else None
        end = _moment(args.until) if args.until else None
    except ValueError as exc:
        parser.error(str(exc))  # exit 2 with the usage, as argparse's own refusals
    if engine is None:
        try:
            loaded = settings.load({**os.environ, "ADMISSIONS_DEV_MODE": "1"})  # no secret needed to export
            store = JobStore(loaded.jobs_url or loaded.jobs_db)
            # Opening creates a missing SQLite file: a mistyped path exported "0 predictions" from a new one.
            if store.file is not None and not store.file.exists():
                print(
                    f"error: no jobs database at {store.file} (ADMISSIONS_JOBS_DB or ADMISSIONS_JOBS_URL)",
                    file=sys.stderr,
                )
                return 2
            store.open()
        except (ConfigurationError, JobStoreUnavailableError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        engine, where = store.engine, store.path
    else:
        where = str(engine.url)
    log = PredictionLog(engine, where)
    try:
        handle = sys.stdout if args.out == "-" else open(args.out, "w", newline="")  # noqa: SIM115
    except OSError as exc:  # a folder that does not exist, a directory, no permission: one sentence, no traceback
        print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    count = 0
    try:
        with handle if handle is not sys.stdout else contextlib.nullcontext(handle):  # never close stdout
            writer = csv.writer(handle)
            writer.writerow(EXPORT_COLUMNS)
            for row in export_rows(log, start, end, args.model):
                writer.writerow("" if value is None else value for value in row)
                count += 1
    except BrokenPipeError:  # `--out - | head`: the reader has what it wanted; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # what Python still flushes at exit goes nowhere
        return 0
    print(f"{count} predictions from {where} written to {args.out}", file=sys.stderr)
    if count == 0 and args.model:  # a mistyped tag looked like a quiet day
        print(f"note: the log holds no prediction of {args.model} in that time (check the tag)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
