"""Every task of the pipeline: ``python -m pipeline run TASK``, or ``PYTHONPATH=. luigi --module pipeline.tasks TASK``
from the checkout (Luigi's script does not put the current folder on Python's path)."""

from pipeline.data import PrepareData
from pipeline.evaluate import EvaluateModel
from pipeline.explain import ExplainModel
from pipeline.intervals import CalibrateIntervals
from pipeline.package import BuildBento, Containerize
from pipeline.promote import PromoteModel
from pipeline.register import RegisterModel
from pipeline.report import ReportRun
from pipeline.selection import SelectModel
from pipeline.train import TrainModel

__all__ = [
    "BuildBento",
    "CalibrateIntervals",
    "Containerize",
    "EvaluateModel",
    "ExplainModel",
    "PrepareData",
    "PromoteModel",
    "RegisterModel",
    "ReportRun",
    "SelectModel",
    "TrainModel",
]
