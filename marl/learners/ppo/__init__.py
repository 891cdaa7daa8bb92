"""The PPO family: PPO, IPPO and MAPPO as one learner (config, nets, rollouts, loss).

Beside it, on the same nets, rollouts and team switches: `reinforce` (REINFORCE), `a2c`
(A2C, MAA2C) and `trpo` (TRPO, MATRPO), one module each. `seeds` trains K seeds of PPO,
IPPO or MAPPO as one batched computation (`marl train ... --seeds K`).
"""

from marl.learners.ppo.config import ALGOS, CONFIG, PPOConfig
from marl.learners.ppo.learner import Experience, PPOLearner, make_env, make_learner
from marl.learners.ppo.loss import ppo_loss, update
from marl.learners.ppo.seeds import SeedsLearner, make_seeds_learner

__all__ = [
    "ALGOS",
    "CONFIG",
    "Experience",
    "PPOConfig",
    "PPOLearner",
    "SeedsLearner",
    "make_env",
    "make_learner",
    "make_seeds_learner",
    "ppo_loss",
    "update",
]
