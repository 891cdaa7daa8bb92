"""What VDN learned on the two-step game: the Q-values behind its greedy return.

Trains `vdn` on `matrix/two_step-v0` with epsilon held at 1 (uniform joint actions) and any
`--set` overrides, then prints the number of updates and target copies, each agent's Q at
state 1, and Q_tot(b0, b1) = q_0(b0) + q_1(b1) of the second state after each first joint
action, beside VDN's least-squares additive fit under uniform data (2A: 7 everywhere; 2B:
[[-1.5, 2.5], [2.5, 6.5]]). the README (C51, noisy nets and Rainbow) explains the runs below:

    python benchmarks/two_step_vdn.py --steps 20000
    python benchmarks/two_step_vdn.py --steps 20000 --set target_update_interval=10
    python benchmarks/two_step_vdn.py --steps 20000 --set updates_per_iterate=20
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

import numpy as np  # noqa: E402
import torch  # noqa: E402

from marl.algorithms import local_trainer, make_config  # noqa: E402
from marl.core.config import parse_overrides  # noqa: E402
from marl.envs import vec_spec  # noqa: E402

LEAST_SQUARES = {"2A": np.full((2, 2), 7.0), "2B": np.array([[-1.5, 2.5], [2.5, 6.5]])}


def learned_tables(team) -> tuple[np.ndarray, dict[tuple[int, int], np.ndarray]]:
    """(q [agents, actions] at state 1, {first joint action: Q_tot [2, 2] at state 2})."""
    tables = {}
    for first in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        obs = torch.zeros(1, 2, 2, 3)
        obs[0, 0, :, 0] = 1.0
        obs[0, 1, :, 1 + first[0]] = 1.0  # 2A after agent 0's action 0, else 2B
        with torch.no_grad():
            q, _ = team.q_values(obs, torch.tensor([[[-1, -1], list(first)]]))
        tables[first] = (q[0, 1, 0][:, None] + q[0, 1, 1][None, :]).double().numpy()
    return q[0, 0].double().numpy(), tables


def main() -> None:
    """Train, then print what the online and the target nets hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = parse_overrides(args.overrides)
    config = make_config("vdn", {"epsilon_start": 1.0, "epsilon_end": 1.0, **overrides})
    for seed in args.seeds:
        trainer = local_trainer("vdn", vec_spec("matrix/two_step-v0"), config, seed)
        while trainer.learner.env_steps < args.steps:
            trainer.iterate()
        learner = trainer.learner
        syncs = learner.updates // config.target_update_interval
        print(f"seed {seed}: {learner.env_steps} env steps, {learner.updates} updates, "
              f"{syncs} target copies {overrides or ''}")  # fmt: skip
        for name, nets in (("online", learner.online), ("target", learner.target)):
            state1, tables = learned_tables(nets[0])
            print(f"  {name} state 1: q_0 = {state1[0].round(2)}, q_1 = {state1[1].round(2)}")
            for first, q_tot in tables.items():
                state = "2A" if first[0] == 0 else "2B"
                gap = np.abs(q_tot - LEAST_SQUARES[state]).max()
                print(f"  {name} {state} after {first}: Q_tot = {q_tot.round(2).tolist()}, "
                      f"max |Q_tot - least squares| = {gap:.2f}")  # fmt: skip
        ones = np.ones((1, 2, 2), dtype=bool)
        first = trainer.policy().act(np.eye(3, dtype=np.float32)[[[0, 0]]], ones)
        goes_to = "2A (return 7)" if first[0, 0] == 0 else "2B (return 8 with (1, 1))"
        print(f"  greedy first joint action {first[0].tolist()}: goes to {goes_to}")


if __name__ == "__main__":
    main()
