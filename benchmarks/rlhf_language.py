"""RLHF on the tiny language task: SFT of a character GRU on the shipped corpus, answers,
synthetic labels by the hidden rule, a Bradley-Terry reward model, then PPO with a KL
penalty (fixed β = 0.5, lr 2e-4) to the SFT model. Writes the plot of learned reward, rule
score and KL over PPO iterations (`docs/rlhf_language.png`) and prints greedy answers before
and after.

The rule (hidden from the reward model): 1 if the answer ends with '.', minus its length
over 80 characters. Labels: 20 pairs of the SFT model's answers per prompt (8 answers per
prompt), 75% labelled at temperature 0.1 for training, 25% noise-free for agreement.
Each PPO iteration answers 64 prompts drawn at random; metrics are of those sampled answers.

    OMP_NUM_THREADS=1 python benchmarks/rlhf_language.py --out runs/rlhf_text
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from marl.learners.rlhf.text_task import TextTaskConfig, run  # noqa: E402

PLOT = Path(__file__).resolve().parents[1] / "docs" / "rlhf_language.png"


def plot(history: list[dict[str, float]], budget: float, path: Path) -> None:
    """Learned reward and rule score (left axis), KL and its budget (right axis)."""
    it = [r["iteration"] for r in history]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(it, [r["reward_learned"] for r in history], label="learned reward (std. units)")
    left.plot(it, [r["true_score"] for r in history], label="rule score (hidden)")
    left.set_xlabel("PPO iteration (64 answers each)")
    left.set_ylabel("mean per answer")
    right = left.twinx()
    right.plot(it, [r["kl"] for r in history], color="tab:red", label="KL(pi || ref), nats")
    right.plot(
        it,
        [r["kl_sampled"] for r in history],
        color="tab:red",
        alpha=0.3,
        linewidth=0.8,
        label="KL, sampled estimate",
    )
    right.axhline(budget, color="tab:red", linestyle="--", label=f"KL target {budget:g}")
    right.set_ylabel("KL per answer (nats)")
    lines = left.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    """Run the task, write the plot, print the numbers; non-zero exit if a check fails."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/rlhf_text"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", type=Path, default=PLOT)
    args = p.parse_args()
    torch.set_num_threads(1)
    cpu, wall = time.process_time(), time.perf_counter()
    summary = run(args.out, TextTaskConfig(), args.seed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    plot(summary["history"], summary["kl_budget"], args.plot)
    first, last = summary["first"], summary["last"]
    held = summary["reward_model"]["heldout_agreement"]
    print(f"reward model: held-out noise-free agreement {held:.3f}")
    for key in ("reward_learned", "true_score", "kl", "kl_sampled", "length", "period"):
        print(f"{key}: {first[key]:.3f} -> {last[key]:.3f}")
    print(
        f"max KL {summary['max_kl']:.2f} (target {summary['kl_budget']:g}); "
        f"{cpu:.0f} s CPU (1 thread), {wall:.0f} s wall, load {os.getloadavg()[0]:.1f}"
    )
    print("| prompt | before (SFT, greedy) | after (PPO, greedy) |\n|---|---|---|")
    for row in summary["samples"]:
        print(f"| `{row['prompt'].strip()}` | `{row['before']}` | `{row['after']}` |")
    ok = (
        last["reward_learned"] > first["reward_learned"]
        and last["true_score"] > first["true_score"]
        and summary["max_kl"] < summary["kl_budget"]
    )
    print("checks met" if ok else "a check MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
