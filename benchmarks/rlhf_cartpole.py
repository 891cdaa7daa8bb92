"""RLHF on CartPole: demonstrations -> SFT -> segments -> synthetic labels -> Bradley-Terry
reward model -> PPO with a KL penalty, against PPO on the true reward at the same budget.

Every stage is seeded from one seed. The demonstrator is CartPole's weak hand-written
controller (push toward the side the pole leans, about 38 steps an episode); SFT clones it;
segments of 25 steps come from the SFT policy sampled with random-action rates 0, 0.3, 0.6
(30 episodes each); 2000 random pairs are labelled by the synthetic annotator at
temperature 1 (Bradley-Terry noise on the true return, 1 a step). Agreement is measured on
1000 noise-free pairs of segments from 90 other episodes (seed 99; tied pairs left out).
Both PPO runs start from the SFT policy with β = 0.05 to it; the greedy return is the mean
undiscounted return of 20 episodes (eval seed 12345) after `--steps` env steps.
With `--rounds 2` (iterated RLHF), the learned-reward run stops at half its steps, labels
2000 more pairs among the old segments and new ones of its own policy (10 episodes at each
rate), refits the reward model to all labels, and goes on with it.

    OMP_NUM_THREADS=1 python benchmarks/rlhf_cartpole.py --seeds 0 1 2 [--steps 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from marl.algorithms import local_trainer, make_config
from marl.core.seeding import child_seed
from marl.envs import make_vec, vec_spec
from marl.learners.rlhf import control, reward_model, sft
from marl.learners.rlhf import preferences as prefs
from marl.learners.rlhf.trajectories import join_segments
from marl.run.evaluate import run_episodes

ENV = "gym/CartPole-v1"


@dataclass(frozen=True)
class Budget:
    """Sizes of every stage."""

    demo_episodes: int = 20
    segment_episodes: int = 30
    segment_length: int = 25
    pairs: int = 2000
    temperature: float = 1.0
    heldout_pairs: int = 1000
    reward_epochs: int = 100
    steps: int = 50_000
    kl_coef: float = 0.05
    rounds: int = 1
    """Reward-model rounds: each after the first adds segments of the PPO policy so far
    (`relabel_episodes` at each exploration rate), labels and a refit, at equal steps."""
    relabel_episodes: int = 10


@dataclass(frozen=True)
class Feedback:
    """What a reward model is fitted to, kept so that a later round can add to it."""

    segments: prefs.SegmentSet
    labels: list[prefs.Preference]
    seed: int


def greedy(policy, episodes: int = 20, seed: int = 12345) -> float:
    """Mean undiscounted greedy return of `episodes` episodes."""
    vec = make_vec(ENV, 10)
    try:
        return float(run_episodes(policy, vec, episodes, greedy=True, seed=seed).mean())
    finally:
        vec.close()


def refit(trainer, feedback: Feedback, budget: Budget, k: int) -> Feedback:
    """Round `k`: segments of the trainer's current policy, labels of pairs drawn from all
    segments so far, and a reward model refitted to all labels, swapped into the learner."""
    policy, seed = trainer.learner.policy(), child_seed(feedback.seed, 10 + k)
    new = control.segments(
        ENV, policy, (0.0, 0.3, 0.6), budget.relabel_episodes, budget.segment_length, seed,
        prefix=f"r{k}",
    )  # fmt: skip
    segments = join_segments([feedback.segments, new])
    labels = feedback.labels + control.synthetic(
        segments, budget.pairs, budget.temperature, child_seed(seed, 1)
    )
    model, _ = control.train_reward(ENV, segments, labels, (64, 64), budget.reward_epochs, seed)
    trainer.learner.reward_model = model.to(trainer.learner.device)
    return Feedback(segments, labels, feedback.seed)


def ppo(reference: Path, reward: str, budget: Budget, seed: int, feedback: Feedback | None = None):
    """`rlhf_ppo` from the SFT policy on `reward` (a reward-model file, or '' for the true
    reward) for `budget.steps` env steps; with `feedback`, `budget.rounds` reward-model
    rounds at equal shares of the steps (`refit`). The learner."""
    config = make_config("rlhf_ppo", dict(
        num_envs=8, rollout_len=128, lr=1e-3, ent_coef=0.0, total_steps=budget.steps,
        reference=str(reference), reward_model=reward, kl_coef=budget.kl_coef,
    ))  # fmt: skip
    trainer = local_trainer("rlhf_ppo", vec_spec(ENV), config, seed)
    rounds = budget.rounds if feedback is not None else 1
    for k in range(rounds):
        if k > 0:
            feedback = refit(trainer, feedback, budget, k)
        while trainer.env_steps < budget.steps * (k + 1) // rounds:
            trainer.iterate()
    return trainer.learner


def pipeline(budget: Budget, seed: int) -> dict[str, float]:
    """Every stage for one seed; agreement, SFT and the two PPO greedy returns."""
    with tempfile.TemporaryDirectory() as tmp:
        demos = control.demonstrations(ENV, budget.demo_episodes, 0.0, child_seed(seed, 0))
        net, _ = control.train_sft(ENV, demos, (64, 64), 20, child_seed(seed, 1))
        sft.save(Path(tmp) / "sft.pt", net, ENV, (64, 64), {})
        policy = control.sft_policy(ENV, Path(tmp) / "sft.pt")
        rates = (0.0, 0.3, 0.6)
        n, length = budget.segment_episodes, budget.segment_length
        train = control.segments(ENV, policy, rates, n, length, child_seed(seed, 2))
        held = control.segments(ENV, policy, rates, n, length, child_seed(seed, 99))
        labels = control.synthetic(train, budget.pairs, budget.temperature, child_seed(seed, 3))
        held_labels = control.synthetic(held, budget.heldout_pairs, 0.0, child_seed(seed, 4))
        model, _ = control.train_reward(ENV, train, labels, (64, 64), budget.reward_epochs, seed)
        reward_model.save(Path(tmp) / "reward.pt", model, ENV, {})
        return {
            "agreement": reward_model.agreement(model, held, held_labels),
            "sft": greedy(policy),
            "learned": greedy(
                ppo(
                    Path(tmp) / "sft.pt",
                    str(Path(tmp) / "reward.pt"),
                    budget,
                    seed,
                    Feedback(train, labels, seed),
                ).policy()
            ),
            "true": greedy(ppo(Path(tmp) / "sft.pt", "", budget, seed).policy()),
        }


def main() -> int:
    """One line per seed, then the mean; non-zero exit if a threshold is missed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=Budget.steps)
    p.add_argument("--rounds", type=int, default=Budget.rounds)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        cpu, wall = time.process_time(), time.perf_counter()
        row = pipeline(Budget(steps=args.steps, rounds=args.rounds), seed)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows.append(row)
        ratio = row["learned"] / row["true"]
        print(f"seed {seed}: agreement {row['agreement']:.3f}, SFT {row['sft']:.1f}, PPO learned "
              f"{row['learned']:.1f}, PPO true {row['true']:.1f} ({ratio:.0%}); "
              f"{cpu:.0f} s CPU (1 thread), {wall:.0f} s wall, load {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    ok = mean["agreement"] >= 0.9 and mean["learned"] >= 0.9 * mean["true"]
    print(f"mean over {len(rows)} seeds: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items())
          + (" (thresholds met)" if ok else " (threshold MISSED)"))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
