"""AlphaZero: net, loss, replay, augmentation, self-play, learner contract, learning test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import TTT_RECIPE, train_until_passed

from marl.algorithms import local_trainer
from marl.cli import main as marl_main
from marl.core.checkpoint import load_checkpoint, save_checkpoint
from marl.core.config import ConfigError, build_config, config_to_dict
from marl.core.trainer import Trainer
from marl.envs import vec_spec
from marl.games import CONNECT_FOUR, TIC_TAC_TOE
from marl.games.minimax import MinimaxPlayer, optimal_moves, results_against_all_optimal_replies
from marl.run.loop import RunSpec, resume, train
from marl.run.metrics import read_metrics
from marl.search import alphazero, strength
from marl.search.alphazero import AlphaZeroConfig, loss, make_learner, make_net
from marl.search.config import SearchConfig
from marl.search.evaluator import NetEvaluator, UniformEvaluator
from marl.search.net import GlobalPoolingBlock, ResidualBlock
from marl.search.play import play_terminal
from marl.search.replay import Batch, ReplayBuffer, augment
from marl.search.selfplay import SelfPlay
from marl.search.strength import StrengthResult, versus_mcts_bot
from marl.search.tree import root_visit_counts

TTT = "classic/tic_tac_toe-v0"
SMALL = build_config(
    AlphaZeroConfig,
    {
        "num_games": 8, "search.simulations": 8, "moves_per_iteration": 5, "train_steps": 2,
        "batch_size": 16, "min_buffer": 16, "channels": 8, "blocks": 1, "eval_simulations": 8,
    },
)  # fmt: skip


def _trainer(config: AlphaZeroConfig, seed: int) -> Trainer:
    """AlphaZero on tic-tac-toe: the learner with one in-process self-play worker."""
    return local_trainer("alphazero", vec_spec(TTT), config, seed)


def _learner(config: AlphaZeroConfig = SMALL, seed: int = 0) -> alphazero.AlphaZeroLearner:
    return make_learner(vec_spec(TTT), config, seed, torch.device("cpu"))


def _untimed(stats: dict[str, float]) -> dict[str, float]:
    """Stats without the wall-clock ones (`time/...`), which no two runs share."""
    return {k: v for k, v in stats.items() if not k.startswith("time/")}


def _flat_sets(config: AlphaZeroConfig) -> list[str]:
    """`--set` values for every field of `config` (nested tables as `search.simulations=8`)."""
    sets = []
    for key, value in config_to_dict(config).items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        sets += [f"{key}.{k}={v}" if k else f"{key}={v}" for k, v in items]
    return sets


def test_net_shapes_and_value_range():
    net = make_net(CONNECT_FOUR, AlphaZeroConfig())
    logits, values = net(torch.randn(5, 2, 6, 7))
    assert logits.shape == (5, 7) and values.shape == (5,)
    assert (values.abs() <= 1).all()


def test_channels_last_net_computes_what_the_contiguous_one_does():
    """Same weights in NHWC: the same logits and values (to float rounding), weights that
    load either way, and a learner that runs and checkpoints with it."""
    nets = [make_net(CONNECT_FOUR, AlphaZeroConfig(channels_last=f)).eval() for f in (0, 1)]
    nets[1].load_state_dict(nets[0].state_dict())
    conv = nets[1].stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    obs = torch.randn(5, 2, 6, 7, generator=torch.Generator().manual_seed(0))
    for a, b in zip(nets[0](obs), nets[1](obs)):
        assert torch.allclose(a, b, atol=1e-5)
    nets[0].load_state_dict(nets[1].state_dict())
    trainer = _trainer(dataclasses.replace(SMALL, channels_last=True), seed=0)
    stats = [trainer.iterate() for _ in range(3)][-1]
    assert np.isfinite(stats["loss"]) and stats["loss"] > 0
    clone = _trainer(SMALL, seed=0)
    clone.learner.load_state_dict(trainer.learner.state_dict())


def test_global_pooling_block_sees_the_whole_board():
    """One global-pooling block carries a change in one corner to the opposite corner (in
    either memory layout), which a plain residual block (two 3x3 convs: 5x5 reach) cannot;
    switched off, the net has the keys it had (checkpoints load as before); the learner
    trains with it; it needs a block to replace."""
    torch.manual_seed(0)
    blocks = [(GlobalPoolingBlock(8), True), (ResidualBlock(8), False)]
    blocks.append((GlobalPoolingBlock(8).to(memory_format=torch.channels_last), True))
    for block, reaches in blocks:
        x = torch.randn(1, 8, 6, 7)
        y = x.clone()
        y[0, :, 0, 0] += 3.0
        far = (block.eval()(x) - block(y))[0, :, 5, 6]
        assert (far.abs().max() > 1e-4) == reaches, type(block).__name__
    nets = {}
    for flag in (False, True):
        torch.manual_seed(0)
        nets[flag] = make_net(CONNECT_FOUR, AlphaZeroConfig(global_pooling=flag)).state_dict()
    assert set(nets[True]) - set(nets[False]) == {"tower.2.bias.weight", "tower.2.bias.bias"}
    trainer = _trainer(dataclasses.replace(SMALL, global_pooling=True), seed=0)
    assert isinstance(trainer.learner.net.tower[-1], GlobalPoolingBlock)
    stats = [trainer.iterate() for _ in range(2)][-1]
    assert np.isfinite(stats["loss"]) and stats["loss"] > 0
    with pytest.raises(ConfigError, match="blocks=0: expected >= 1"):
        build_config(AlphaZeroConfig, {"blocks": 0, "global_pooling": True})


def test_compiled_search_evaluator_matches_the_eager_one():
    """`torch_compile`: the same priors and values (to float rounding) at any batch size, and
    weights changed in place after compiling are seen without recompiling."""
    config = dataclasses.replace(SMALL, torch_compile=True)
    net = make_net(TIC_TAC_TOE, config).eval()
    eager, compiled = NetEvaluator(net), NetEvaluator(net, torch_compile=True)
    for batch in (5, 3, 5):
        obs = torch.randn(
            batch, *TIC_TAC_TOE.obs_shape, generator=torch.Generator().manual_seed(batch)
        )
        legal = torch.ones(batch, 9, dtype=torch.bool)
        for a, b in zip(eager(obs, legal), compiled(obs, legal)):
            assert torch.allclose(a, b, atol=1e-5)
        with torch.no_grad():
            net.stem[0].weight.mul_(2.0)
    assert _learner(config).player().evaluator.forward is compiled.forward


class FixedNet(torch.nn.Module):
    def forward(self, obs):
        logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]])).expand(len(obs), 3)
        return logits, torch.full((len(obs),), 0.5)


def test_loss_terms_by_hand():
    batch = Batch(
        torch.zeros(2, 1), torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5]]), torch.tensor([1.0, -1.0])
    )
    total, stats = loss(FixedNet(), batch, AlphaZeroConfig(value_loss_weight=2.0))
    policy = (-np.log(0.5) - np.log(0.25)) / 2
    value = (0.25 + 2.25) / 2
    assert stats["policy_loss"] == pytest.approx(policy)
    assert stats["value_loss"] == pytest.approx(value)
    assert total.item() == pytest.approx(policy + 2 * value)


def test_replay_buffer_overwrites_the_oldest_and_round_trips():
    buf = ReplayBuffer(4, (1,), 2)
    for i in range(6):
        buf.add(torch.tensor([[float(i)]]), torch.tensor([[1.0, 0.0]]), torch.tensor([float(i)]))
    assert buf.size == 4 and sorted(buf.value.tolist()) == [2.0, 3.0, 4.0, 5.0]
    copy = ReplayBuffer(4, (1,), 2)
    copy.load_state_dict(buf.state_dict())
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(buf.sample(8, gen_a).value, copy.sample(8, gen_b).value)


def test_mirror_augmentation_moves_stones_and_policy_together():
    board = CONNECT_FOUR.play(CONNECT_FOUR.initial(1), torch.tensor([1]))
    obs = CONNECT_FOUR.observe(board).repeat(64, 1, 1, 1)
    policy = torch.zeros(64, 7)
    policy[:, 1] = 1.0
    out = augment(
        CONNECT_FOUR, Batch(obs, policy, torch.zeros(64)), torch.Generator().manual_seed(0)
    )
    mirrored = out.policy[:, 5] == 1
    assert 10 < mirrored.sum() < 54  # both the identity and the mirror were drawn
    assert (out.obs[mirrored, 1, 5, 5] == 1).all() and (out.obs[~mirrored, 1, 5, 1] == 1).all()


def test_selfplay_values_positions_by_the_final_result():
    play = SelfPlay(TIC_TAC_TOE, UniformEvaluator(), SearchConfig(simulations=4), num_games=6)
    rng = np.random.default_rng(0)
    finished = [play.step(rng) for _ in range(9)]  # every tic-tac-toe game ends within 9 moves
    lengths = torch.cat([f.lengths for f in finished])
    samples = [f.samples for f in finished]
    assert len(lengths) >= 6 and sum(len(s.value) for s in samples) == lengths.sum()
    for f in finished:
        start = 0
        for length, result in zip(f.lengths.tolist(), f.returns[:, 0].tolist()):
            values = f.samples.value[start : start + length]
            expected = torch.tensor([result * (-1) ** t for t in range(length)])
            assert torch.equal(values, expected)
            occupied = f.samples.obs[start : start + length].sum(1).flatten(1) > 0
            assert (f.samples.policy[start : start + length][occupied] == 0).all()
            start += length


def test_learner_is_deterministic_and_counts_moves():
    runs = []
    for _ in range(2):
        trainer = _trainer(SMALL, seed=3)
        learner = trainer.learner
        stats = [_untimed(trainer.iterate()) for _ in range(2)]
        runs.append((stats, learner.net.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])
    assert learner.env_steps == 2 * 5 * 8
    assert {"policy_loss", "value_loss", "loss", "return/player_0"} <= set(runs[0][0][-1])


def test_checkpoint_is_weights_only_and_resumes_exactly(tmp_path):
    trainer = _trainer(SMALL, seed=1)
    trainer.iterate()
    state = trainer.state_dict()
    path = save_checkpoint(
        tmp_path / "ckpt.pt", algo="alphazero", env_id=TTT, config={}, learner=state["learner"],
        progress={"iteration": state["iteration"]},
    )  # fmt: skip
    record = load_checkpoint(path, env_id=TTT, algo="alphazero")
    clone = _trainer(SMALL, seed=1)  # a fresh copy of the same run (its acting seeds), restored
    clone.load_state_dict({"learner": record["learner"], **record["progress"]})
    trainer.load_state_dict(trainer.state_dict())  # both restart self-play from fresh games
    assert _untimed(trainer.iterate()) == _untimed(clone.iterate())


def _first_search_roots(carry) -> dict:
    """Wrap the carry's search: record the roots' visits, priors and boards as its first search
    of the next `collect` finds them (before any simulation)."""
    mcts, seen = carry.selfplay.mcts, {}
    search = mcts.search

    def recording(rng):
        if not seen:
            seen["visits"] = mcts.tree.visits[:, 0].clone()
            seen["prior"] = mcts.tree.prior[:, 0].clone()
            seen["boards"] = mcts.root_states().clone()
        return search(rng)

    mcts.search = recording
    return seen


@pytest.mark.parametrize("change", ["load_weights", "learn"])
def test_new_weights_regrow_the_selfplay_trees_at_the_current_roots(change):
    search = dataclasses.replace(SMALL.search, simulations=32)
    # greedy moves (the most visited child: its subtree is reused); no game ends in 4 moves
    config = dataclasses.replace(SMALL, search=search, moves_per_iteration=2, temperature_moves=0)
    spec = vec_spec(TTT)
    learner = make_learner(spec, config, 0, torch.device("cpu"))
    env = alphazero.make_env(spec, config, 4, seed=0)
    carry = learner.start(env, seed=5)
    assert carry.version == learner.version
    _, carry = learner.collect(env, carry)
    # control: unchanged weights keep the reused subtrees (roots already visited)
    kept = _first_search_roots(carry)
    boards = carry.selfplay.mcts.root_states().clone()
    _, carry = learner.collect(env, carry)
    assert (kept["visits"] > 1).all() and torch.equal(kept["boards"], boards)
    boards = carry.selfplay.mcts.root_states().clone()
    stale = learner.version
    if change == "load_weights":
        other = make_learner(spec, config, 1, torch.device("cpu"))
        learner.load_weights(other.weights())
    else:
        side = learner.start(env, seed=6)  # other games, played to the end (<= 9 moves each)
        parts = [learner.collect(env, side)[0] for _ in range(5)]
        learner.learn(parts)  # >= 4 x 5 positions: past min_buffer, so it trains
    assert learner.version > stale and carry.version == stale
    regrown = _first_search_roots(carry)
    _, carry = learner.collect(env, carry)
    assert carry.version == learner.version  # the trees caught up with the weights
    assert torch.equal(regrown["boards"], boards)  # regrown at the current roots, not restarted
    assert (regrown["visits"] == 1).all()  # fresh roots: visited once, by their evaluation
    legal = TIC_TAC_TOE.legal_mask(boards)
    prior, _ = learner.evaluator(TIC_TAC_TOE.observe(boards), legal)
    assert torch.allclose(regrown["prior"], prior)  # evaluated by the current net
    assert root_visit_counts(carry.selfplay.mcts.tree).sum(1).max() > 0


def test_policy_acts_from_vec_env_arrays_and_finds_a_win():
    learner = _learner()
    board = torch.tensor([[1, 1, 0, -1, -1, 0, 0, 0, 0]], dtype=torch.int8)
    obs = TIC_TAC_TOE.observe(board).flatten(1)
    obs = torch.stack([obs, obs.flip(0)], dim=1).numpy()  # [B=1, N=2, O]; agent 1 cannot act
    mask = np.zeros((1, 2, 9), dtype=bool)
    mask[0, 0] = TIC_TAC_TOE.legal_mask(board)[0].numpy()
    learner.player(simulations=32)  # builds without error
    actions = learner.policy().act(obs, mask)
    assert actions.shape == (1, 2) and actions[0, 0] == 2 and actions[0, 1] == 0


def test_minimax_knows_the_forced_replies():
    board = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0])  # X in a corner: only the centre draws
    assert optimal_moves(board) == [4]
    opposite = torch.tensor([1, 0, 0, 0, -1, 0, 0, 0, 1])  # O must take an edge, not a corner
    assert optimal_moves(opposite) == [1, 3, 5, 7]
    perfect = MinimaxPlayer()
    for first in (True, False):
        counts = results_against_all_optimal_replies(perfect.act_batch, player_first=first)
        assert counts["loss"] == 0 and counts["win"] == 0 and counts["draw"] > 0


def test_bad_env_and_env_kwargs_are_refused():
    with pytest.raises(ValueError, match="did you mean classic/tic_tac_toe-v0"):
        vec_spec("classic/tic_tac_to-v0")
    spec = vec_spec(TTT)
    typo = dataclasses.replace(spec, env_id="classic/tic_tac_to-v0")
    with pytest.raises(ValueError, match="did you mean classic/tic_tac_toe-v0"):
        make_learner(typo, SMALL, 0, torch.device("cpu"))
    with_kwargs = dataclasses.replace(spec, env_kwargs={"render_mode": "ansi"})
    with pytest.raises(ValueError, match="take no env kwargs"):
        make_learner(with_kwargs, SMALL, 0, torch.device("cpu"))


def test_play_terminal_reports_the_result(tmp_path):
    learner = _learner()
    path = save_checkpoint(
        tmp_path / "c.pt", algo="alphazero", env_id=TTT, config=config_to_dict(SMALL),
        learner=learner.state_dict(),
    )  # fmt: skip
    replies = iter(["9", "x", "0", "1", "2", "3", "4", "5", "6", "7", "8"])
    printed: list[str] = []

    def answer(prompt):
        move = next(replies)
        printed.append(prompt)
        return move

    result = play_terminal(TTT, path, input_fn=answer, print_fn=printed.append, simulations=4)
    assert result in (-1, 0, 1)
    assert any("'9' is not a legal move" in line for line in printed)
    assert printed[-1] in ("You win!", "Draw.", "AlphaZero wins.")


def test_train_cli_logs_losses_checkpoints_and_evaluates(tmp_path):
    sets = _flat_sets(SMALL)
    argv = ["train", "alphazero", "--env", TTT, "--steps", "80", "--out", str(tmp_path)]
    assert marl_main([*argv, "--no-progress", *sum((["--set", s] for s in sets), [])]) == 0
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["env_steps"] for r in rows] == [40.0, 80.0]  # 8 games x 5 moves per iteration
    assert np.isfinite(rows[-1]["loss"]) and rows[-1]["value_loss"] >= 0
    record = load_checkpoint(tmp_path / "checkpoint.pt", env_id=TTT, algo="alphazero")
    assert record["learner"]["env_steps"] == 80 and record["config"]["channels"] == 8
    result = strength.evaluate(tmp_path, episodes=2)  # what `marl eval RUN` is to call
    assert result.games == 2 and result.simulations == 8 and result.bot_simulations == 1000


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    iterate = Trainer.iterate

    def crash_after_80_steps(self):
        if self.env_steps >= 80:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(Trainer, "iterate", crash_after_80_steps)
    spec = RunSpec("alphazero", TTT, steps=160, checkpoint_every=40)
    with pytest.raises(KeyboardInterrupt):
        train(spec, config_to_dict(SMALL), out=tmp_path, progress=False)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["learner"]
    assert saved["env_steps"] == 80
    monkeypatch.setattr(Trainer, "iterate", iterate)
    run = resume(tmp_path, progress=False)
    assert run.learner.env_steps == 160 and run.learner.games_played > saved["games_played"]
    assert [r["env_steps"] for r in read_metrics(tmp_path / "metrics.csv")] == [40, 80, 120, 160]


class ScriptedPlayer:
    """Duck-typed `AlphaZeroPlayer` for the strength harness: a fixed rule over boards."""

    def __init__(self, act_batch):
        self.act_batch, self.game = act_batch, TIC_TAC_TOE
        self.search = SearchConfig(simulations=1)


def test_strength_results_are_counted_from_our_seat():
    def lowest_cell(boards):
        return TIC_TAC_TOE.legal_mask(boards).int().argmax(1)

    naive = versus_mcts_bot(ScriptedPlayer(lowest_cell), games=6, bot_simulations=300)
    perfect = versus_mcts_bot(ScriptedPlayer(MinimaxPlayer().act_batch), 6, 300, seed=1)
    assert naive.games == perfect.games == 6
    assert naive.losses >= 4, f"the lowest-cell rule should lose to MCTS: {naive.summary()}"
    assert perfect.losses == 0, f"perfect play cannot lose: {perfect.summary()}"
    with pytest.raises(ValueError, match="games=0"):
        versus_mcts_bot(ScriptedPlayer(lowest_cell), games=0)


def test_strength_score_and_summary_by_hand():
    result = StrengthResult(3, 2, 5, simulations=64, bot_simulations=1000, wins_as_first=2)
    assert result.games == 10 and result.score == pytest.approx(0.4)
    assert "3 wins, 2 draws, 5 losses in 10 games" in result.summary()
    assert "2 of the wins moving first" in result.summary()
    assert (
        "MCTSBot(1000 random-rollout" in result.summary() and "(64 sims/move)" in result.summary()
    )


TTT_LEARN = build_config(AlphaZeroConfig, TTT_RECIPE)


def _losses(player) -> dict[str, int]:
    return {
        side: results_against_all_optimal_replies(player.act_batch, player_first=first)["loss"]
        for side, first in (("first", True), ("second", False))
    }


@pytest.mark.slow
def test_tic_tac_toe_from_scratch_never_loses_to_perfect_play():
    """Within 45 iterations (45 x 64 games x 9 moves = 25,920 self-play moves, `TTT_RECIPE`;
    a budget of iterations, not a wall-clock time), checked every fifth from the 25th, the net
    stops losing lines to minimax's optimal replies from either seat (seed 0 played perfectly at
    every fifth iteration from the 20th; seeds 0-5 all at 45-55)."""
    trainer = _trainer(TTT_LEARN, seed=0)
    untrained = _losses(trainer.learner.player(simulations=64))
    assert sum(untrained.values()) > 0, "the untrained net should not already play perfectly"
    losses = train_until_passed(
        trainer, range(25, 46, 5), lambda learner: _losses(learner.player(simulations=64)),
        lambda lost: sum(lost.values()) == 0,
    )  # fmt: skip
    assert trainer.learner.env_steps == (20 + 5 * len(losses)) * 64 * 9
    assert losses[-1] == {"first": 0, "second": 0}, f"lines lost, iterations 25, 30, ...: {losses}"
