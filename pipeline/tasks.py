"""Every task of the pipeline, for ``luigi --module pipeline.tasks TASK``."""

from pipeline.data import PrepareData
from pipeline.evaluate import EvaluateModel
from pipeline.package import BuildBento, Containerize
from pipeline.register import RegisterModel
from pipeline.selection import SelectModel
from pipeline.train import TrainModel

__all__ = ["BuildBento", "Containerize", "EvaluateModel", "PrepareData", "RegisterModel", "SelectModel", "TrainModel"]
