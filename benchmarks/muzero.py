"""MuZero: learning curves on tic-tac-toe and CartPole, and search speed against AlphaZero's.

    python benchmarks/muzero.py ttt        # train on classic/tic_tac_toe-v0 until no line
                                            # against minimax's optimal replies is lost
    python benchmarks/muzero.py cartpole   # train on gym/CartPole-v1 until greedy >= 475
    python benchmarks/muzero.py c4         # connect four for --cpu-budget s, then 100 games
                                            # against pyspiel.MCTSBot(1,000 rollouts)
    python benchmarks/muzero.py sims       # simulations/s: MuZero vs AlphaZero, same net size
    python benchmarks/muzero.py spiel      # MuZero's search vs OpenSpiel's Python MCTSBot
    python benchmarks/muzero.py diagnose --checkpoint RUN/moves00061440.pt
                                            # a connect-four net: does its model see wins?

Each training run prints one line per evaluation with env steps, this process's CPU time
(`time.process_time`, torch threads: 1), wall time and the load average, and stops at the
target or the CPU budget (`--cpu-budget`, seconds). `--set key=value` overrides the config.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from marl.algorithms import local_trainer
from marl.core.config import build_config, parse_overrides
from marl.core.seeding import seeded_init
from marl.envs.vector import vec_spec
from marl.search.muzero import MuZeroConfig

TTT = {"num_envs": 64, "search.simulations": 32, "temperature_moves": 4,
       "moves_per_iteration": 9, "train_steps": 32, "batch_size": 128, "min_buffer": 256,
       "buffer_size": 8000, "lr": 2e-3, "unroll_steps": 5, "td_steps": 10,
       "value_loss_weight": 1.0}  # fmt: skip
"""The tic-tac-toe recipe (also the slow test's)."""

CARTPOLE = {"num_envs": 16, "search.simulations": 16, "search.gumbel": True,
            "search.gumbel_considered": 2, "moves_per_iteration": 16, "train_steps": 16,
            "batch_size": 128, "min_buffer": 500, "buffer_size": 50_000, "lr": 1e-3,
            "discount": 0.997, "td_steps": 10, "unroll_steps": 5,
            "eval_simulations": 16}  # fmt: skip
"""The CartPole recipe."""

CONNECT_FOUR = {"num_envs": 64, "search.simulations": 32, "moves_per_iteration": 8,
                "train_steps": 16, "batch_size": 128, "min_buffer": 1024,
                "buffer_size": 50_000, "lr": 1e-3, "td_steps": 50, "value_loss_weight": 1.0,
                "eval_simulations": 400, "net": "conv", "channels": 32, "blocks": 1,
                "consistency_weight": 2.0}  # fmt: skip
"""The connect-four recipe: conv towers whose hidden state is 32 planes of the board (the
MLP over the flattened board won 0 of 100 after 20 CPU-minutes); td_steps past the longest
game, so targets are game results; EfficientZero's consistency loss (without it the model's
tactics fall apart a few moves into the search: 0 of 100 after 65 CPU-minutes); players
search 400 simulations (on the consistent model more simulations help)."""


def _losses(learner) -> dict[str, int]:
    from marl.games.minimax import results_against_all_optimal_replies

    player = learner.player(simulations=64)
    return {
        side: results_against_all_optimal_replies(player.act_batch, player_first=first)["loss"]
        for side, first in (("first", True), ("second", False))
    }


def _greedy(learner, episodes: int = 10) -> float:
    import marl

    env = marl.make_vec("gym/CartPole-v1", episodes)
    policy, step = learner.policy(), env.reset(seed=1)
    running, finished = np.zeros(episodes), np.full(episodes, np.nan)
    while np.isnan(finished).any():
        step = env.step(policy.act(step.obs, step.action_mask))
        running += step.reward[:, 0]
        done = (step.terminated | step.truncated) & np.isnan(finished)
        finished[done] = running[done]
    env.close()
    return float(finished.mean())


def train(env_id: str, overrides: dict, score, done, every: int, budget: float, seed: int):
    """Train until `done(score(learner))` or `budget` CPU seconds of training; print each
    evaluation. The budget counts training only: the evaluations' CPU is printed apart."""
    config = build_config(MuZeroConfig, overrides)
    trainer = local_trainer("muzero", vec_spec(env_id), config, seed)
    cpu0, wall0, eval_cpu = time.process_time(), time.perf_counter(), 0.0
    iteration = 0
    while True:
        trainer.iterate()
        iteration += 1
        if iteration % every:
            continue
        start = time.process_time()
        result = score(trainer.learner)
        eval_cpu += time.process_time() - start
        cpu, wall = time.process_time() - cpu0 - eval_cpu, time.perf_counter() - wall0
        print(f"iter {iteration:4d}  env steps {trainer.learner.env_steps:7d}  score {result}  "
              f"train cpu {cpu:6.0f} s  eval cpu {eval_cpu:5.0f} s  wall {wall:6.0f} s  "
              f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
        if done(result) or cpu > budget:
            return trainer.learner


def _c4_wins(games: int, seed: int, out: Path | None):
    """A connect-four score: wins/draws/losses of `games` games against MCTSBot(1,000); with
    `out`, each scored net is also saved there (`marl eval` and `marl play` read it)."""
    from marl.core.checkpoint import save_checkpoint
    from marl.core.config import config_to_dict
    from marl.search.strength import versus_mcts_bot

    def score(learner) -> str:
        if out is not None:
            save_checkpoint(out / f"moves{learner.env_steps:08d}.pt", algo="muzero",
                            env_id=learner.spec.env_id, config=config_to_dict(learner.config),
                            learner={"net": learner.net.state_dict()})  # fmt: skip
        result = versus_mcts_bot(learner.player(), games, 1000, seed)
        return f"{result.wins}/{result.draws}/{result.losses}"

    return score


def sims_per_second(games: int, simulations: int, width: int, repeats: int = 20) -> None:
    """Simulations/s of one batched search on tic-tac-toe's empty board: AlphaZero on the
    rules with its 32x2 residual net vs MuZero on its model (MLPs of `width`; 84 gives about
    the same parameter count). Fresh trees each search, PUCT, no noise."""
    from marl.games import TIC_TAC_TOE
    from marl.search.config import SearchConfig
    from marl.search.evaluator import NetEvaluator
    from marl.search.mcts import MCTS
    from marl.search.muzero import search_model
    from marl.search.muzero_model import MuZeroNet
    from marl.search.net import PolicyValueNet

    search = SearchConfig(simulations=simulations, reuse_tree=False)
    boards = TIC_TAC_TOE.initial(games)
    obs, legal = TIC_TAC_TOE.observe(boards), TIC_TAC_TOE.legal_mask(boards)
    to_play = TIC_TAC_TOE.to_play(boards)
    with seeded_init(0):
        az_net = PolicyValueNet(TIC_TAC_TOE.obs_shape, 9, channels=32, blocks=2).eval()
        mz_net = MuZeroNet(TIC_TAC_TOE.obs_shape, 9, hidden=64, width=width, support=20).eval()
    az_params = sum(p.numel() for p in az_net.parameters())
    mz_params = sum(p.numel() for p in mz_net.parameters())

    def alphazero() -> None:
        mcts = MCTS(TIC_TAC_TOE, NetEvaluator(az_net), search)
        mcts.reset(boards)
        mcts.search(np.random.default_rng(0))

    def muzero() -> None:
        search_model(mz_net, True, search, obs, legal, to_play, np.random.default_rng(0))

    for name, run, params in (("alphazero", alphazero, az_params), ("muzero", muzero, mz_params)):
        run()  # warm-up
        start = time.process_time()
        for _ in range(repeats):
            run()
        seconds = (time.process_time() - start) / repeats
        print(f"{name:9s} {games} trees x {simulations} sims: {games * simulations / seconds:8.0f}"
              f" sims/s  ({params} parameters; cpu {seconds:.3f} s per search, load "
              f"{os.getloadavg()[0]:.2f})")  # fmt: skip


class RepresentThenPredict(torch.nn.Module):
    """A MuZero net used as a plain policy/value net on real positions (no dynamics)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, scalar values) of observations."""
        from marl.search.muzero_targets import from_support

        logits, value_logits = self.net.predict(self.net.initial(obs))
        return logits, from_support(torch.softmax(value_logits, dim=1))


def sims_vs_openspiel(games: int, simulations: int, width: int, positions: int = 20) -> None:
    """Connect four, one MuZero net: our batched search over its model (B trees) against
    OpenSpiel's Python `MCTSBot` on the real rules, the same net asked one position at a time
    (representation + prediction), as `benchmarks/alphazero_sims.py` measures AlphaZero."""
    from benchmarks.alphazero_sims import openings, openspiel_python
    from marl.games import CONNECT_FOUR
    from marl.search.config import SearchConfig
    from marl.search.muzero import search_model
    from marl.search.muzero_model import MuZeroNet

    with seeded_init(0):
        net = MuZeroNet(CONNECT_FOUR.obs_shape, 7, hidden=64, width=width, support=20).eval()
    boards = openings(games, 6, 1)
    obs, legal = CONNECT_FOUR.observe(boards), CONNECT_FOUR.legal_mask(boards)
    to_play, search = CONNECT_FOUR.to_play(boards), SearchConfig(simulations=simulations)
    search_model(net, True, search, obs, legal, to_play, np.random.default_rng(0))  # warm-up
    start = time.process_time()
    search_model(net, True, search, obs, legal, to_play, np.random.default_rng(0))
    ours = games * simulations / (time.process_time() - start)
    with torch.inference_mode():
        spiel = openspiel_python(RepresentThenPredict(net), positions, simulations)
    print(f"connect four, MuZero net of width {width}: ours {ours:8.0f} sims/s ({games} trees x "
          f"{simulations} sims); OpenSpiel Python MCTSBot {spiel:6.0f} sims/s ({positions} "
          f"positions); ratio {ours / spiel:.0f}x; load {os.getloadavg()[0]:.2f}")  # fmt: skip


def winning_positions(games: int, moves: int, seed: int):
    """Connect-four positions of random play where the side to move has a winning move:
    (boards, which moves win [N, 7], the previous boards, the move that led here)."""
    from marl.games import CONNECT_FOUR as c4

    gen = torch.Generator().manual_seed(seed)
    boards, alive = c4.initial(games), torch.ones(games, dtype=torch.bool)
    found, previous, last_move = [], None, None
    for t in range(moves):
        legal = c4.legal_mask(boards)
        alive &= legal.any(1)
        mover = c4.to_play(boards)
        wins = torch.stack([_wins_with(boards, legal, mover, a) for a in range(c4.cols)], 1)
        chosen = alive & wins.any(1) & (t > 0)
        if chosen.any():
            found.append((boards[chosen], wins[chosen], previous[chosen], last_move[chosen]))
        weights = legal.float() + (~legal.any(1, keepdim=True)).float()  # a full board: any
        move = torch.multinomial(weights, 1, generator=gen)[:, 0]
        previous, last_move = boards, move
        boards = c4.play(boards, move, check=False)
        alive &= ~c4.outcome(boards)[0]
    return tuple(torch.cat(parts) for parts in zip(*found))


def _wins_with(boards: torch.Tensor, legal: torch.Tensor, mover: torch.Tensor, move: int):
    """[N] whether `move` is legal and wins at once for `mover`, the side to move."""
    from marl.games import CONNECT_FOUR as c4

    safe = torch.where(legal[:, move], move, legal.float().argmax(1))
    done, returns = c4.outcome(c4.play(boards, safe, check=False))
    return legal[:, move] & done & (returns.gather(1, mover[:, None])[:, 0] > 0)


@torch.no_grad()
def model_sees_wins(net, seed: int = 0) -> dict[str, float]:
    """How often the move of highest predicted reward wins, from the representation of the
    position (1 step) and from the previous position's representation through the dynamics
    (2 steps); and the predicted reward of winning and of other legal moves."""
    from marl.games import CONNECT_FOUR as c4
    from marl.search.muzero_targets import from_support

    boards, wins, previous, move = winning_positions(4000, 30, seed)
    legal = c4.legal_mask(boards)
    one_step = net.initial(c4.observe(boards))
    two_step = net.recurrent(net.initial(c4.observe(previous)), move)[0]
    out = {"positions": float(len(boards))}
    for name, hidden in (("1-step", one_step), ("2-step", two_step)):
        rewards = torch.stack([
            from_support(torch.softmax(net.recurrent(hidden, torch.full_like(move, a))[1], 1))
            for a in range(c4.cols)
        ], dim=1)  # fmt: skip
        best = rewards.masked_fill(~legal, -9.0).argmax(1, keepdim=True)
        out[f"{name} best-reward move wins"] = wins.gather(1, best).float().mean().item()
        out[f"{name} reward of winning moves"] = rewards[wins].mean().item()
        out[f"{name} reward of other moves"] = rewards[legal & ~wins].mean().item()
    return out


def diagnose(checkpoint: Path, games: int, simulations: list[int], bots: list[int]) -> None:
    """A MuZero connect-four checkpoint: does its model see immediate wins, and how does its
    net play searched over its own model against searched on the true rules (representation +
    prediction as an AlphaZero net), against MCTSBot of several sizes?"""
    import dataclasses

    from marl.search.play import load_player
    from marl.search.players import AlphaZeroPlayer
    from marl.search.strength import versus_mcts_bot

    model_player = load_player(None, checkpoint)
    net = model_player.net.eval()
    for key, value in model_sees_wins(net).items():
        print(f"{key:32s} {value:.3f}")
    rules_player = AlphaZeroPlayer(RepresentThenPredict(net).eval(), 1, model_player.game,
                                   model_player.search)  # fmt: skip
    for label, player in (("model", model_player), ("rules", rules_player)):
        for sims in simulations:
            player.search = dataclasses.replace(player.search, simulations=sims)
            for bot in bots:
                result = versus_mcts_bot(player, games, bot, 0)
                print(
                    f"search on the {label}, {sims:4d} sims vs MCTSBot({bot:4d}): "
                    f"{result.wins}/{result.draws}/{result.losses}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("ttt", "cartpole", "c4", "sims", "spiel", "diagnose"))
    parser.add_argument(
        "--n",
        type=int,
        default=100,
        help="c4: games against MCTSBot(1000); diagnose: games per match",
    )
    parser.add_argument(
        "--curve-games",
        type=int,
        default=20,
        help="c4: games against MCTSBot(1000) at each evaluation (the curve)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="c4: a folder for the net of each curve point"
    )
    parser.add_argument("--checkpoint", type=Path, help="diagnose: a connect-four MuZero net")
    parser.add_argument(
        "--bots", type=int, nargs="+", default=[50, 200, 1000], help="diagnose: MCTSBot sizes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu-budget", type=float, default=600.0)
    parser.add_argument("--every", type=int, default=5, help="iterations between evaluations")
    parser.add_argument("--games", type=int, default=64)
    parser.add_argument("--simulations", type=int, default=32)
    parser.add_argument("--width", type=int, default=84, help="sims: MuZero's MLP width")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    extra = parse_overrides(args.set)
    if args.what == "sims":
        sims_per_second(args.games, args.simulations, args.width)
    elif args.what == "diagnose":
        diagnose(args.checkpoint, args.n, [64, 400], args.bots)
    elif args.what == "spiel":
        sims_vs_openspiel(args.games, args.simulations, args.width)
    elif args.what == "ttt":
        train("classic/tic_tac_toe-v0", TTT | extra, _losses,
              lambda r: sum(r.values()) == 0, args.every, args.cpu_budget, args.seed)  # fmt: skip
    elif args.what == "cartpole":
        train("gym/CartPole-v1", CARTPOLE | extra, _greedy, lambda r: r >= 475,
              args.every, args.cpu_budget, args.seed)  # fmt: skip
    else:
        from marl.search.strength import versus_mcts_bot

        learner = train("classic/connect_four-v0", CONNECT_FOUR | extra,
                        _c4_wins(args.curve_games, args.seed, args.out), lambda r: False,
                        args.every,
                        args.cpu_budget, args.seed)  # fmt: skip
        start = time.process_time()
        result = versus_mcts_bot(learner.player(), args.n, 1000, args.seed)
        print(result.summary(), f"(evaluation cpu {time.process_time() - start:.0f} s)")


if __name__ == "__main__":
    main()
