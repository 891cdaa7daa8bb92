"""RLHF: learning a reward from preferences and optimizing it with PPO under a KL penalty.

Stages and where they live: demonstrations and segments (`trajectories`), behaviour cloning
of the reference policy (`sft`), preferences, the synthetic annotator and the JSONL label
file (`preferences`), the Bradley-Terry reward model of an obs/action space
(`reward_model`), the KL estimators and β's controller (`kl`), and PPO against the learned
reward (`ppo`: the `rlhf_ppo` algorithm, PPO's learner with its rollouts rescored).
`control` chains the control task's stages; `text`, `language` and `text_task` are the
language task (a character GRU, its reward model and token-level PPO).
"""
