"""Tabular Q-learning and Dyna-Q: pure numerics, the state index, the learner, a train loop."""

from marl.learners.tabular.learner import (
    TabularCarry,
    TabularConfig,
    TabularExperience,
    TabularLearner,
    TabularPolicy,
)
from marl.learners.tabular.train import TabularRun, evaluate_tabular, train_tabular

__all__ = [
    "TabularCarry",
    "TabularConfig",
    "TabularExperience",
    "TabularLearner",
    "TabularPolicy",
    "TabularRun",
    "evaluate_tabular",
    "train_tabular",
]
