"""Self-play leagues and ratings.

- `games`: tables of two-player results (CSV or league store) -> `GameTable`.
- `ratings`: Bradley-Terry/Elo fits with intervals (`fit_ratings`), online Elo.
- `players`: the `Player` protocol, baselines (random, OpenSpiel MCTS) and adapters.
- `config`: the league TOML schema; `matchmaking`: uniform, latest-vs-past, PFSP.
- `arena`: plays games in worker processes; `store`: the SQLite record of every game.
- `runner`: `run_league` (resumable); `report`: status and the HTML report.
"""
