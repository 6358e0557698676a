"""The Luigi pipeline: raw CSV -> validated data -> candidate models -> evaluation -> registered model.

Stages, one module each: data (PrepareData), train (TrainModel), evaluate (EvaluateModel),
selection (SelectModel), register (RegisterModel), package (BuildBento, Containerize).
``pipeline.tasks`` imports them all for Luigi's ``--module``.

scikit-learn and matplotlib are imported inside the functions that use them: scheduling,
a no-op re-run and ``lineage`` then start in about a second instead of several.
"""
