"""The off-policy actor-critic family: DDPG, TD3, SAC and MADDPG, MATD3, MASAC as one learner
(config, networks, loss, policy, learner)."""

from marl.learners.actor_critic.config import ALGOS, CONFIG, ActorCriticConfig
from marl.learners.actor_critic.learner import ActorCriticLearner, make_env, make_learner
from marl.learners.actor_critic.policy import ActorPolicy, Experience

__all__ = [
    "ALGOS",
    "CONFIG",
    "ActorCriticConfig",
    "ActorCriticLearner",
    "ActorPolicy",
    "Experience",
    "make_env",
    "make_learner",
]
