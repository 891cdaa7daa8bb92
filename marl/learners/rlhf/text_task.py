"""The language task end to end: SFT on the corpus, answers to compare, labels, the reward
model, then PPO with the KL penalty; each stage's output is written to one folder.

Folder contents: `answers.jsonl` (`{"id", "prompt", "answer"}` a line: the SFT model's
sampled answers, the segments that labels refer to), `labels.jsonl` (the synthetic
annotator's, unless a label file was given), `sft.pt`, `reward.pt`, `policy.pt` (marl
checkpoints), `metrics.csv` (one row per PPO iteration) and `samples.json` (greedy answers
to a fixed set of prompts before and after PPO).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl.core.checkpoint import atomic_write_bytes, save_checkpoint
from marl.core.seeding import child_seed, torch_generator
from marl.learners.rlhf import preferences as prefs
from marl.learners.rlhf.language import (
    AnswerRewardModel,
    TextPPO,
    TextPPOConfig,
    agreement,
    fit_reward,
    rule_score,
)
from marl.learners.rlhf.text import CharGRU, read_corpus, sample, sft, split_line

TASK = "text/qa"
"""The `env_id` the language task's checkpoints record."""


@dataclass(frozen=True)
class TextTaskConfig:
    """Sizes of each stage of the language task."""

    sft_epochs: int = 60
    """Passes of next-character training over the corpus."""
    hidden: int = 128
    """GRU size of the language model."""
    answers_per_prompt: int = 8
    """Answers sampled from the SFT model per prompt (the segments to compare)."""
    pairs_per_prompt: int = 20
    """Labelled comparisons per prompt (between its answers)."""
    heldout_fraction: float = 0.25
    """Fraction of the pairs kept out of training, labelled noise-free, for agreement."""
    temperature: float = 0.1
    """Bradley-Terry temperature of the synthetic annotator (in rule-score units)."""
    reward_epochs: int = 20
    """Passes over the labels when fitting the reward model."""
    iterations: int = 80
    """PPO iterations."""
    ppo: TextPPOConfig = field(
        default_factory=lambda: TextPPOConfig(lr=2e-4, kl_coef=0.5, kl_target=0.0)
    )
    """PPO settings (default: fixed β = 0.5, lr 2e-4: the KL's mean stays about a nat below
    `kl_budget`, as each 64-answer batch's KL is that noisy)."""
    kl_budget: float = 3.0
    """The KL (nats per answer) the run must stay below; reported, checked by the benchmark."""


def _answers(model: CharGRU, prompts: list[str], cfg: TextTaskConfig, seed: int) -> dict[str, dict]:
    gen = torch_generator(seed)
    rows: dict[str, dict] = {}
    for k in range(cfg.answers_per_prompt):
        for i, (prompt, answer) in enumerate(
            zip(prompts, sample(model, prompts, cfg.ppo.max_new, gen).answers)
        ):
            rows[f"q{i}-{k}"] = {"id": f"q{i}-{k}", "prompt": prompt, "answer": answer}
    return rows


def _pairs(
    num_prompts: int, cfg: TextTaskConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    out = []
    for i in range(num_prompts):
        for _ in range(cfg.pairs_per_prompt):
            x, y = rng.choice(cfg.answers_per_prompt, 2, replace=False)
            out.append((f"q{i}-{x}", f"q{i}-{y}"))
    order = rng.permutation(len(out))
    return [out[j] for j in order]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def _reward_stage(
    out: Path,
    answers: dict[str, str],
    num_prompts: int,
    cfg: TextTaskConfig,
    seed: int,
    labels_file: str | Path | None,
) -> tuple[AnswerRewardModel, dict[str, float]]:
    """Labels (synthetic, or read from `labels_file`) and the reward model fitted to them."""
    rng = np.random.default_rng(child_seed(seed, 3))
    pairs = _pairs(num_prompts, cfg, rng)
    cut = int(len(pairs) * (1 - cfg.heldout_fraction))
    true = {k: rule_score(a) for k, a in answers.items()}
    heldout = prefs.synthetic_labels(pairs[cut:], true, 0.0, rng)
    if labels_file is not None:
        labels = prefs.read_labels(labels_file, list(answers))
    else:
        labels = prefs.synthetic_labels(pairs[:cut], true, cfg.temperature, rng)
        prefs.write_labels(out / "labels.jsonl", labels)
    reward = AnswerRewardModel(seed=child_seed(seed, 4))
    stats = fit_reward(reward, answers, labels, epochs=cfg.reward_epochs, seed=child_seed(seed, 5))
    stats["heldout_agreement"] = agreement(reward, answers, heldout)
    reward.normalize(list(answers.values()))
    save_checkpoint(
        out / "reward.pt",
        algo="rlhf_text_reward",
        env_id=TASK,
        config={},
        model=reward.state_dict(),
    )
    return reward, stats


def _ppo_stage(
    model: CharGRU,
    reward: AnswerRewardModel,
    prompts: list[str],
    cfg: TextTaskConfig,
    seed: int,
    log: Callable[[str], Any],
) -> list[dict[str, float]]:
    """`cfg.iterations` PPO iterations on random prompts; one row of stats per iteration."""
    ppo = TextPPO(model, reward, cfg.ppo, child_seed(seed, 6))
    gen, history = torch_generator(child_seed(seed, 7)), []
    for it in range(cfg.iterations):
        batch = torch.randint(len(prompts), (cfg.ppo.batch,), generator=gen).tolist()
        history.append({"iteration": it} | ppo.iterate([prompts[i] for i in batch]))
        if it % 10 == 0 or it == cfg.iterations - 1:
            row = history[-1]
            log(
                f"ppo {it}: learned reward {row['reward_learned']:.3f}, rule score "
                f"{row['true_score']:.3f}, kl {row['kl']:.2f}, beta {row['beta']:.3f}"
            )
    return history


def _write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def run(
    out: str | Path,
    cfg: TextTaskConfig,
    seed: int = 0,
    labels_file: str | Path | None = None,
    log: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Every stage of the language task into folder `out`; the summary it also writes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = read_corpus()
    prompts = sorted({split_line(line)[0] for line in lines})
    model = CharGRU(cfg.hidden, seed=child_seed(seed, 0))
    log(f"sft: {sft(model, lines, epochs=cfg.sft_epochs, seed=child_seed(seed, 1))}")
    save_checkpoint(
        out / "sft.pt",
        algo="rlhf_text_sft",
        env_id=TASK,
        config={"hidden": cfg.hidden},
        model=model.state_dict(),
    )
    rows = _answers(model, prompts, cfg, child_seed(seed, 2))
    _write_jsonl(out / "answers.jsonl", list(rows.values()))
    answers = {k: r["answer"] for k, r in rows.items()}
    reward, stats = _reward_stage(out, answers, len(prompts), cfg, seed, labels_file)
    log(f"reward model: {stats}")
    shown = prompts[:: max(1, len(prompts) // 8)][:8]
    before = sample(model, shown, cfg.ppo.max_new, torch_generator(0), greedy=True).answers
    history = _ppo_stage(model, reward, prompts, cfg, seed, log)
    after = sample(model, shown, cfg.ppo.max_new, torch_generator(0), greedy=True).answers
    save_checkpoint(
        out / "policy.pt",
        algo="rlhf_text_ppo",
        env_id=TASK,
        config=asdict(cfg.ppo),
        model=model.state_dict(),
    )
    _write_metrics(out / "metrics.csv", history)
    summary = {
        "reward_model": stats,
        "first": history[0],
        "last": history[-1],
        "max_kl": max(r["kl"] for r in history),
        "kl_budget": cfg.kl_budget,
        "samples": [
            {"prompt": p, "before": b, "after": a} for p, b, a in zip(shown, before, after)
        ],
    }
    atomic_write_bytes(out / "samples.json", json.dumps(summary, indent=1).encode())
    return summary | {"history": history}
