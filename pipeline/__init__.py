"""The Luigi pipeline: raw CSV -> validated data -> candidates -> evaluation -> a gated, registered model.

Stages, one module each: data (PrepareData), train (TrainModel), evaluate (EvaluateModel), selection
(SelectModel), intervals (CalibrateIntervals), explain (ExplainModel), register (RegisterModel), promote
(PromoteModel: the gate), report (ReportRun), package (BuildBento, Containerize). ``pipeline.tasks``
imports them all for Luigi's ``--module``; ``pipeline/cli/`` holds the command-line tools. Shared with
the service only through ``core/`` (docs/architecture.md).

scikit-learn and matplotlib are imported inside the functions that use them: scheduling,
a no-op re-run and ``lineage`` then start in about a second instead of several.
"""
