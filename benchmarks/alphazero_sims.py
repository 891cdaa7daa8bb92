"""Search speed of batched AlphaZero MCTS against OpenSpiel's MCTS, and playing strength.

Speed (default): simulations/s of the default connect-four net searched by
  * ours: B trees x S simulations, one batched network call per simulation step;
  * OpenSpiel's Python `MCTSBot` with an evaluator that runs the same torch net one position at
    a time (its usual way: no batching);
and ours as a fraction of the net's own forward throughput at batch B (the ceiling).
Times are this process's CPU time (`time.process_time`), so other jobs on a shared machine
do not skew the ratios; with the default `--threads 1` that is one core's work.

Strength (`--strength CKPT`, a checkpoint or run dir): wins/draws/losses of its greedy search
against `pyspiel.MCTSBot` with a random-rollout evaluator (1,000 simulations/move), colors
alternating (`marl.search.strength`).

    python benchmarks/alphazero_sims.py --games 256 --simulations 64
    python benchmarks/alphazero_sims.py --strength runs/az_c4 --n 100 --simulations 800
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyspiel
import torch
from open_spiel.python.algorithms import mcts as spiel_mcts

from marl.games import CONNECT_FOUR
from marl.search.alphazero import AlphaZeroConfig, make_net
from marl.search.config import SearchConfig
from marl.search.evaluator import NetEvaluator
from marl.search.mcts import MCTS


def openings(count: int, moves: int, seed: int) -> torch.Tensor:
    """`count` connect-four positions after up to `moves` seeded random moves (none finished)."""
    rng = np.random.default_rng(seed)
    boards = CONNECT_FOUR.initial(count)
    for _ in range(moves):
        legal = CONNECT_FOUR.legal_mask(boards).float()
        choice = torch.multinomial(
            legal, 1, generator=torch.Generator().manual_seed(int(rng.integers(1 << 31)))
        )
        nxt = CONNECT_FOUR.play(boards, choice[:, 0])
        done, _ = CONNECT_FOUR.outcome(nxt)
        boards = torch.where(done[:, None], boards, nxt)
    return boards


def forward_throughput(net: torch.nn.Module, batch: int, seconds: float = 3.0) -> float:
    """Positions/s of the bare net at `batch` (inference mode, eval mode)."""
    obs = CONNECT_FOUR.observe(openings(batch, 6, 0))
    evaluator = NetEvaluator(net)
    legal = torch.ones(batch, 7, dtype=torch.bool)
    evaluator(obs, legal)
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        evaluator(obs, legal)
        calls += 1
    return calls * batch / (time.process_time() - start)


class TimedEvaluator:
    """Wraps an evaluator, adding up the time and positions spent inside it."""

    def __init__(self, evaluator: NetEvaluator):
        self.evaluator, self.seconds, self.positions = evaluator, 0.0, 0

    def __call__(self, obs: torch.Tensor, legal: torch.Tensor) -> tuple:
        """Evaluate and account."""
        start = time.process_time()
        out = self.evaluator(obs, legal)
        self.seconds += time.process_time() - start
        self.positions += len(obs)
        return out


def ours(net: torch.nn.Module, batch: int, simulations: int) -> tuple[float, float, float]:
    """(sims/s, share of time inside the net, positions evaluated per sim) of our search."""
    evaluator = TimedEvaluator(NetEvaluator(net))
    mcts = MCTS(CONNECT_FOUR, evaluator, SearchConfig(simulations=simulations))
    mcts.reset(openings(batch, 6, 1))
    evaluator.seconds, evaluator.positions = 0.0, 0
    start = time.process_time()
    mcts.search(np.random.default_rng(0))
    elapsed = time.process_time() - start
    sims = batch * simulations
    return sims / elapsed, evaluator.seconds / elapsed, evaluator.positions / sims


class TorchSpielEvaluator(spiel_mcts.Evaluator):
    """OpenSpiel MCTS evaluator running our net on one position per call (last result cached)."""

    def __init__(self, net: torch.nn.Module):
        self.evaluator = NetEvaluator(net)
        self.last: tuple[str, torch.Tensor, float] | None = None
        self.forward_calls = 0

    def _run(self, state) -> tuple[torch.Tensor, float]:
        key = state.history_str()
        if self.last is None or self.last[0] != key:
            planes = _mover_planes(state)
            legal = torch.tensor(state.legal_actions_mask(), dtype=torch.bool)[None]
            prior, value = self.evaluator(planes[None], legal)
            self.forward_calls += 1
            self.last = (key, prior[0], float(value[0]))
        return self.last[1], self.last[2]

    def evaluate(self, state):
        """[value for player 0, value for player 1]."""
        if state.is_terminal():
            return state.returns()
        _, value = self._run(state)
        mover = state.current_player()
        return [value, -value] if mover == 0 else [-value, value]

    def prior(self, state):
        """[(action, prior)] over legal actions."""
        prior, _ = self._run(state)
        return [(a, float(prior[a])) for a in state.legal_actions()]


def _mover_planes(state) -> torch.Tensor:
    """OpenSpiel connect four observation -> our planes (mover's stones, opponent's)."""
    obs = torch.tensor(state.observation_tensor(), dtype=torch.float32).view(3, 6, 7)
    # OpenSpiel planes: [player 0 ('x'), player 1 ('o'), empty], row 0 at the BOTTOM.
    own, opp = (obs[0], obs[1]) if state.current_player() == 0 else (obs[1], obs[0])
    return torch.stack([own, opp]).flip(1)


def openspiel_python(net: torch.nn.Module, positions: int, simulations: int) -> float:
    """Simulations/s of OpenSpiel's Python MCTSBot with the net evaluated one position at a time."""
    game = pyspiel.load_game("connect_four")
    evaluator = TorchSpielEvaluator(net)
    bot = spiel_mcts.MCTSBot(
        game, 1.5, simulations, evaluator, solve=False, random_state=np.random.RandomState(0)
    )
    states = []
    rng = np.random.default_rng(1)
    for _ in range(positions):
        state = game.new_initial_state()
        for _ in range(6):
            state.apply_action(int(rng.choice(state.legal_actions())))
        states.append(state)
    start = time.process_time()
    for state in states:
        bot.step(state)
    return positions * simulations / (time.process_time() - start)


def speed(args: argparse.Namespace) -> None:
    """Print sims/s of both searches and the ratios (medians of interleaved repeats)."""
    torch.manual_seed(0)
    cfg = AlphaZeroConfig()
    net = make_net(CONNECT_FOUR, cfg).eval()
    threads = torch.get_num_threads()
    print(f"net: {cfg.channels} channels x {cfg.blocks} blocks, torch threads {threads}")
    fwd, mine = [], []
    for _ in range(args.repeats):  # interleaved, so a busy machine slows both alike
        fwd.append(forward_throughput(net, args.games))
        mine.append(ours(net, args.games, args.simulations))
    fwd_b = float(np.median(fwd))
    ours_sps, net_share, per_sim = (float(np.median(col)) for col in zip(*mine))
    fwd1 = forward_throughput(net, 1, seconds=2.0)
    theirs = openspiel_python(net, args.positions, args.simulations)
    print(f"net forward:        {fwd_b:9.0f} positions/s at batch {args.games}, {fwd1:.0f}/s at 1")
    shape = f"{args.games} trees x {args.simulations} sims"
    print(f"ours (batched):     {ours_sps:9.0f} sims/s  ({shape})")
    print(f"OpenSpiel MCTSBot:  {theirs:9.0f} sims/s  (Python, net one position at a time)")
    print(f"ours / OpenSpiel:   {ours_sps / theirs:9.1f}x")
    print(f"ours / net forward: {ours_sps / fwd_b:9.0%}  (goal >= 50%)")
    print(
        f"time inside the net: {net_share:6.0%} of our search "
        f"({per_sim:.2f} evaluated positions per simulation; terminal revisits need none)"
    )


def memory_formats(args: argparse.Namespace) -> None:
    """Bare-net forward positions/s, contiguous against channels-last (interleaved repeats)."""
    import os

    nets = {  # the net keeps its own layout and converts its input to it
        fmt: make_net(CONNECT_FOUR, AlphaZeroConfig(channels_last=fmt == torch.channels_last))
        for fmt in (torch.contiguous_format, torch.channels_last)
    }
    for rep in range(args.repeats):
        for batch in (args.games, 16):
            line = []
            for fmt, net in nets.items():
                net.eval()
                obs = CONNECT_FOUR.observe(openings(batch, 6, 0)).contiguous(memory_format=fmt)
                calls, start = 0, time.process_time()
                with torch.inference_mode():
                    while time.process_time() - start < 2.0:
                        net(obs)
                        calls += 1
                line.append(f"{fmt}: {calls * batch / (time.process_time() - start):.0f}/s")
            load = os.getloadavg()[0]
            print(f"repeat {rep} batch {batch}: {', '.join(line)} (load {load:.1f})")


VARIANTS = {  # each sets both knobs, whatever the run file says
    "contiguous": {"channels_last": False, "torch_compile": False},
    "channels_last": {"channels_last": True, "torch_compile": False},
    "channels_last+compile": {"channels_last": True, "torch_compile": True},
}


def iteration_formats(args: argparse.Namespace, config_path: str, iterations: int = 12) -> None:
    """CPU seconds of whole learner iterations (self-play, then training) of a run file in
    each of `VARIANTS`, the learners interleaved (same seed; the first two iterations are
    warm-up, compiling included, and not counted)."""
    import dataclasses

    from marl.core.config import build_config, load_toml
    from marl.envs.vector import vec_spec
    from marl.search.alphazero import make_env, make_learner

    run = load_toml(config_path)
    spec = vec_spec(run["env"])
    runs, totals = {}, {}
    for name, changes in VARIANTS.items():
        config = dataclasses.replace(build_config(AlphaZeroConfig, run["config"]), **changes)
        learner = make_learner(spec, config, seed=args.seed)
        env = make_env(spec, config, config.num_games, args.seed)
        runs[name] = [learner, env, learner.start(env, args.seed)]
        totals[name] = [0.0, 0.0]
    for it in range(iterations):
        for name, (learner, env, carry) in runs.items():
            start = time.process_time()
            experience, runs[name][2] = learner.collect(env, carry)
            middle = time.process_time()
            learner.learn([experience])
            if it >= 2:
                totals[name][0] += middle - start
                totals[name][1] += time.process_time() - middle
    for name, (selfplay, training) in totals.items():
        print(f"{name}: self-play {selfplay:.1f} s CPU, training {training:.1f} s CPU "
              f"over {iterations - 2} iterations of {config_path}")  # fmt: skip


def strength(args: argparse.Namespace) -> None:
    """Play the checkpoint against pyspiel.MCTSBot (random rollouts), alternating colors."""
    from marl.search.strength import evaluate_checkpoint

    start = time.perf_counter()
    result = evaluate_checkpoint(
        args.strength, args.n, args.simulations, args.bot_simulations, args.seed
    )
    print(f"{result.summary()}  [{time.perf_counter() - start:.0f} s wall]")


def main() -> None:
    """Parse arguments and run the speed or strength benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=int, default=256, help="trees searched together (B)")
    parser.add_argument(
        "--simulations",
        type=int,
        help="simulations per move (speed: 64; strength: the checkpoint's eval_simulations)",
    )
    parser.add_argument("--positions", type=int, default=4, help="positions OpenSpiel searches")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats")
    parser.add_argument("--strength", metavar="CKPT", help="play this checkpoint vs MCTSBot")
    parser.add_argument("--n", type=int, default=100, help="games in --strength mode")
    parser.add_argument("--bot-simulations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-format", action="store_true",
                        help="forward rate contiguous vs channels-last")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_format:
        memory_formats(args)
        iteration_formats(args, "envs/alphazero_connect_four_fast.toml")
    elif args.strength:
        strength(args)
    else:
        args.simulations = args.simulations or 64
        speed(args)


if __name__ == "__main__":
    main()
