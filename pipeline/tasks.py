"""Every task of the pipeline, for ``luigi --module pipeline.tasks TASK``."""

from pipeline.data import PrepareData
from pipeline.evaluate import EvaluateModel
from pipeline.register import RegisterModel
from pipeline.selection import SelectModel
from pipeline.train import TrainModel

__all__ = ["EvaluateModel", "PrepareData", "RegisterModel", "SelectModel", "TrainModel"]
