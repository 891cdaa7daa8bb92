"""Self-play leagues and ratings.

- `games`: tables of two-player results (CSV or league store) -> `GameTable`.
- `ratings`: Bradley-Terry/Elo fits with intervals (`fit_ratings`), online Elo.
- `players`: the `Player` protocol, baselines (random, OpenSpiel MCTS) and adapters;
  `learned`: AlphaZero and PPO players loaded from checkpoints (snapshots).
- `config`: the league TOML schema; `matchmaking`: uniform, latest-vs-past, PFSP.
- `arena`: plays games in worker processes; `teams`: two-team envs (MPE) as games;
  `store`: the SQLite record of every game, snapshot and learner round.
- `learners`: learners trained between rounds (snapshots, round checkpoints).
- `runner`: `run_league` (resumable); `report`: status and the HTML report.
"""
