"""Errors the pipeline raises for predictable problems; each message says what to fix.

PipelineError
├── DataError          the raw file cannot be read as the expected CSV, or too many rows are invalid
├── PackagingError     a Bento cannot be built or containerized (e.g. no container engine)
├── LineageError       a model tag is unknown or its lineage cannot be followed
└── PromotionRefusedError   the promotion gate refused a registered model (it stays in the store)

The command line prints these as one line without a traceback (see ``pipeline.cli.main``).
"""


class PipelineError(Exception):
    """Root of the pipeline's own errors."""


class DataError(PipelineError):
    """The raw data cannot be used as given."""


class PackagingError(PipelineError):
    """Building or containerizing the Bento failed for a reason the user can fix."""


class LineageError(PipelineError):
    """A registered model's lineage cannot be shown."""


class PromotionRefusedError(PipelineError):
    """A new model is worse than the promoted one by more than the gate's tolerances."""
