"""`marl rlhf STAGE`: learning from preferences, one stage a command, each a file in, a file out.

Control task (one-agent, discrete actions; the built-in demonstrator is CartPole's)::

    E=gym/CartPole-v1
    marl rlhf demos    --env $E --out demos.npz
    marl rlhf sft      --env $E --demos demos.npz --out sft.pt
    marl rlhf segments --env $E --policy sft.pt --out segments.npz
    marl rlhf label    --segments segments.npz --temperature 1 --out labels.jsonl
    marl rlhf reward   --env $E --segments segments.npz --labels labels.jsonl --out reward.pt
    marl rlhf ppo      --env $E --reference sft.pt --reward-model reward.pt --steps 50000

`label` is the synthetic annotator; human labels are a JSONL file of the same format
(`{"a": ID, "b": ID, "preferred": "a"|"b"|"tie"}`). `ppo` is `marl train rlhf_ppo` (a normal
run directory: checkpoints, `--resume` with `marl train --resume DIR`, metrics).

Language task: `marl rlhf text --out DIR` runs SFT, answers, labels, reward model and PPO.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from marl.cli import add_import_argument
from marl.cli.argtypes import at_least, probability

ENV_HELP = "env id (one agent, discrete actions), e.g. gym/CartPole-v1"


def _probabilities(text: str) -> list[float]:
    try:
        return [probability(x) for x in text.split(",")]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected probabilities in [0, 1] separated by commas ({err})"
        ) from None


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected layer sizes like 64,64")
    return sizes


def _stage(
    sub: Any, name: str, help_: str, handler: Any, env: bool = True
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_)
    if env:
        p.add_argument("--env", required=True, help=ENV_HELP)
    p.add_argument("--seed", type=at_least(0), default=0, help="seed (default 0)")
    p.set_defaults(handler=handler)
    return p


def _fit_arguments(p: argparse.ArgumentParser, epochs: int, out: str) -> None:
    """--hidden, --epochs and --out of a stage that fits a network."""
    p.add_argument("--hidden", type=_hidden, default=(64, 64), help="layer sizes (64,64)")
    p.add_argument("--epochs", type=at_least(1), default=epochs, help=f"passes ({epochs})")
    p.add_argument("--out", type=Path, required=True, help=out)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `marl rlhf` and its stages."""
    top = subparsers.add_parser("rlhf", help="learn from preferences: SFT, reward model, PPO")
    sub = top.add_subparsers(dest="stage", required=True, title="stages")
    p = _stage(sub, "demos", "record demonstrations of the env's built-in demonstrator", demos)
    p.add_argument("--episodes", type=at_least(1), default=20)
    p.add_argument("--epsilon", type=probability, default=0.0, help="random-action probability")
    p.add_argument("--out", type=Path, required=True, help="demonstration file (.npz)")
    p = _stage(sub, "sft", "behaviour-clone a reference policy from demonstrations", sft_command)
    p.add_argument("--demos", type=Path, required=True, help="demonstration file (.npz)")
    _fit_arguments(p, 20, "SFT file (.pt)")
    p = _stage(sub, "segments", "cut a policy's episodes into segments to compare", segments)
    p.add_argument("--policy", type=Path, required=True, help="SFT file whose policy acts")
    p.add_argument(
        "--epsilons",
        type=_probabilities,
        default=[0.0, 0.3, 0.6],
        help="random-action rates, one batch of episodes each (0,0.3,0.6)",
    )
    p.add_argument("--episodes", type=at_least(1), default=30, help="episodes per rate")
    p.add_argument("--length", type=at_least(1), default=25, help="steps per segment")
    p.add_argument("--out", type=Path, required=True, help="segment file (.npz)")
    p = _stage(
        sub,
        "label",
        "the synthetic annotator: label random pairs by the true reward",
        label,
        env=False,
    )
    p.add_argument("--segments", type=Path, required=True)
    p.add_argument("--pairs", type=at_least(1), default=2000)
    p.add_argument(
        "--temperature", type=float, default=1.0, help="Bradley-Terry noise (0: noise-free)"
    )
    p.add_argument("--out", type=Path, required=True, help="label file (.jsonl)")
    p = _stage(sub, "reward", "fit a Bradley-Terry reward model to labelled pairs", reward)
    p.add_argument("--segments", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True, help="label file (.jsonl)")
    _fit_arguments(p, 100, "reward-model file (.pt)")
    p = _stage(sub, "ppo", "PPO on the learned reward with a KL penalty to the reference", ppo)
    p.add_argument("--reference", type=Path, required=True, help="SFT file")
    p.add_argument("--reward-model", type=Path, help="reward-model file (default: true reward)")
    p.add_argument("--kl-coef", type=float, help="beta (default 0.05; or --set kl_coef=)")
    p.add_argument("--kl-target", type=float, help="adapt beta toward it (default 0: fixed)")
    p.add_argument("--steps", type=at_least(1), default=50_000)
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="PPO setting, e.g. --set lr=1e-3 (repeatable)",
    )
    p.add_argument("--out", type=Path, help="run directory (default runs/rlhf_ppo-ENV-sSEED)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_import_argument(p)
    p = _stage(
        sub, "text", "the language task: SFT, labels, reward model, PPO with KL", text, env=False
    )
    p.add_argument(
        "--labels",
        type=Path,
        help="label file over DIR/answers.jsonl ids (default: the synthetic annotator's)",
    )
    p.add_argument("--iterations", type=at_least(1), default=80, help="PPO iterations")
    p.add_argument("--out", type=Path, required=True, help="folder for every stage's output")


def demos(args: argparse.Namespace) -> int:
    """Record and save demonstrations."""
    from marl.learners.rlhf import control, trajectories

    episodes = control.demonstrations(args.env, args.episodes, args.epsilon, args.seed)
    trajectories.save_episodes(args.out, episodes)
    mean = sum(len(e.actions) for e in episodes) / len(episodes)
    print(f"{args.out}: {len(episodes)} episodes, {mean:.1f} steps each on average")
    return 0


def sft_command(args: argparse.Namespace) -> int:
    """Clone the demonstrations and save the reference policy."""
    from marl.learners.rlhf import control, sft, trajectories

    episodes = trajectories.load_episodes(args.demos)
    net, stats = control.train_sft(args.env, episodes, args.hidden, args.epochs, args.seed)
    sft.save(args.out, net, args.env, args.hidden, stats)
    print(
        f"{args.out}: accuracy {stats['accuracy']:.3f} on {stats['steps']:.0f} demonstrated steps"
    )
    return 0


def segments(args: argparse.Namespace) -> int:
    """Play the SFT policy, cut and save segments."""
    from marl.learners.rlhf import control, preferences

    policy = control.sft_policy(args.env, args.policy)
    found = control.segments(args.env, policy, args.epsilons, args.episodes, args.length, args.seed)
    preferences.save_segments(args.out, found)
    print(f"{args.out}: {len(found.ids)} segments of {found.length} steps")
    return 0


def label(args: argparse.Namespace) -> int:
    """Label random pairs with the synthetic annotator."""
    from marl.learners.rlhf import control, preferences

    found = preferences.load_segments(args.segments)
    labels = control.synthetic(found, args.pairs, args.temperature, args.seed)
    preferences.write_labels(args.out, labels)
    ties = sum(p.label == 0.5 for p in labels)
    print(f"{args.out}: {len(labels)} labels ({ties} ties) at temperature {args.temperature:g}")
    return 0


def reward(args: argparse.Namespace) -> int:
    """Fit and save the reward model."""
    from marl.learners.rlhf import control, preferences, reward_model

    found = preferences.load_segments(args.segments)
    labels = preferences.read_labels(args.labels, found.ids)
    model, stats = control.train_reward(
        args.env, found, labels, args.hidden, args.epochs, args.seed
    )
    reward_model.save(args.out, model, args.env, stats)
    print(f"{args.out}: agreement with its {len(labels)} labels {stats['agreement']:.3f}")
    return 0


def ppo(args: argparse.Namespace) -> int:
    """`marl train rlhf_ppo` with the reference and reward model as settings."""
    from marl.core.config import ConfigError, parse_overrides
    from marl.run.loop import RunSpec, default_out, train

    flags = {
        # absolute: the run's config is read again by `marl eval` and --resume from anywhere
        "reference": str(args.reference.resolve()),
        "reward_model": str(args.reward_model.resolve()) if args.reward_model else None,
        "kl_coef": args.kl_coef,
        "kl_target": args.kl_target,
    }
    flags = {key: value for key, value in flags.items() if value is not None}
    config = parse_overrides(args.overrides)
    twice = sorted(set(config) & set(flags))
    if twice:
        raise ConfigError(
            f"--set {twice[0]}=... and its flag (--{twice[0].replace('_', '-')}) both give "
            f"{twice[0]}; give it once"
        )
    config |= flags
    spec = RunSpec("rlhf_ppo", args.env, steps=args.steps, seed=args.seed)
    run = train(spec, config, out=args.out or default_out(spec), progress=not args.no_progress)
    last = run.rows[-1] if run.rows else {}
    shown = {k: round(v, 3) for k, v in last.items() if k.startswith(("return/", "rlhf/"))}
    print(f"run: {run.out_dir}  steps: {run.learner.env_steps:,}  last: {shown}")
    return 0


def text(args: argparse.Namespace) -> int:
    """Run the language task's stages into one folder."""
    from dataclasses import replace

    from marl.learners.rlhf.text_task import TextTaskConfig, run

    cfg = replace(TextTaskConfig(), iterations=args.iterations)
    summary = run(args.out, cfg, args.seed, args.labels)
    print(
        f"{args.out}: rule score {summary['first']['true_score']:.3f} -> "
        f"{summary['last']['true_score']:.3f}, max KL {summary['max_kl']:.2f} nats"
    )
    return 0
