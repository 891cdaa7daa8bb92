"""Play a trained AlphaZero or MuZero checkpoint in the terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from marl.core.checkpoint import CheckpointError, load_checkpoint, load_state
from marl.core.config import build_config
from marl.search.alphazero import AlphaZeroConfig, make_net, rules_for_env
from marl.search.game import SelfPlayGame
from marl.search.players import AlphaZeroPlayer


def load_player(
    env_id: str | None,
    checkpoint: str | Path,
    simulations: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> AlphaZeroPlayer:
    """A greedy search player from an alphazero (or muzero) checkpoint file or run directory.

    With `env_id`, a checkpoint trained on another env is refused; None takes the checkpoint's.
    `env_kwargs` (an OpenSpiel game's parameters) default to those the run was trained with.
    """
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoint.pt"
    record = load_checkpoint(path, env_id=env_id)
    if record.get("algo") == "muzero":
        from marl.search.muzero import player_from_record

        return player_from_record(record, simulations, env_kwargs)
    record = load_checkpoint(path, env_id=env_id, algo="alphazero")
    config = build_config(AlphaZeroConfig, record["config"])
    if env_kwargs is None:
        env_kwargs = record.get("run", {}).get("env_kwargs")
    game = rules_for_env(record["env_id"], env_kwargs)
    net = make_net(game, config)
    learner = record.get("learner", {})
    state = learner.get("weights", learner.get("net"))  # a league snapshot, or a whole run
    if state is None:
        raise CheckpointError(f"{path} holds no network weights (expected learner.net)")
    load_state(net.load_state_dict, state, path, f"{record['env_id']} with this config's network")
    return greedy_player(net, game, config, simulations)


def greedy_player(
    net: torch.nn.Module,
    game: SelfPlayGame,
    config: AlphaZeroConfig,
    simulations: int | None = None,
) -> AlphaZeroPlayer:
    """A deterministic search player on `net` (no root noise; `eval_simulations` by default)."""
    net.eval()
    return AlphaZeroPlayer(net, simulations or config.eval_simulations, game,
                           config.search.greedy(), torch_compile=config.torch_compile)  # fmt: skip


def _move_choices(game: SelfPlayGame, board: Any) -> tuple[dict[str, int], str]:
    """What a human may type at `board` (text -> action) and how to ask for it."""
    if hasattr(game, "describe_moves"):  # an OpenSpiel game names its moves
        names = game.describe_moves(board)
        return {**{str(a): a for a in names.values()}, **names}, f"move in {list(names)}"
    legal = game.legal_mask(board[None])[0].nonzero()[:, 0].tolist()
    what = "column" if game.gravity else "cell (row * 3 + column)"
    # not int(text): '²' and 5,000 digits fail
    return {str(move): move for move in legal}, f"{what} in {legal}"


def _ask_move(game, board: Any, input_fn: Callable[[str], str], print_fn) -> int:
    choices, what = _move_choices(game, board)
    while True:
        try:
            text = input_fn(f"your move, a {what}: ").strip()
        except EOFError:  # Ctrl-D or the end of piped input: leave as `q` does
            print_fn("\nend of input; game abandoned")
            raise KeyboardInterrupt from None
        if text.lower() in ("q", "quit", "exit"):
            raise KeyboardInterrupt
        if text in choices:
            return choices[text]
        shown = repr(text) if len(text) <= 20 else f"{text[:20]!r}... ({len(text)} characters)"
        print_fn(f"{shown} is not a legal move; choose a {what} (or q to quit)")


def play_terminal(
    env_id: str,
    checkpoint: str | Path,
    human_first: bool = True,
    input_fn: Callable[[str], str] | None = None,
    print_fn: Callable[[str], None] | None = None,
    simulations: int | None = None,
) -> int:
    """Play one game against the checkpoint; return +1 / 0 / -1 as the human won / drew / lost.

    `input_fn` / `print_fn` default to the builtins `input` / `print`, looked up at call time.
    """
    input_fn = input_fn or input
    print_fn = print_fn or print
    player = load_player(env_id, checkpoint, simulations)
    game = player.game
    board = game.initial(1)
    human = 0 if human_first else 1
    marks = "X (first)" if human_first else "O (second)"
    name = type(player).__name__.removesuffix("Player")  # AlphaZero or MuZero
    print_fn(f"{game.name}: you play {marks} against {name}; enter q to quit")
    while True:
        print_fn(game.render(board[0]))
        if int(game.to_play(board)[0]) == human:
            move = _ask_move(game, board[0], input_fn, print_fn)
        else:
            move = int(player.act_batch(board)[0])
            print_fn(f"{name} plays {move}")
        board = game.play(board, torch.tensor([move]))
        terminal, returns = game.outcome(board)
        if bool(terminal[0]):
            print_fn(game.render(board[0]))
            result = int(returns[0, human])
            print_fn({1: "You win!", 0: "Draw.", -1: f"{name} wins."}[result])
            return result
