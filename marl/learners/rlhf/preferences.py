"""Preferences between trajectory segments: the segment set, a synthetic annotator, and the
JSONL file of (human) labels.

A `SegmentSet` holds S segments of one length L, each with an id: observations, actions,
which steps are alive (False after the episode ended inside the segment: the absorbing
state), and the hidden true reward of each step (NaN when unknown, e.g. for human labels).
A `Preference` says which of two segments was preferred: `label` is 1 when `a` was, 0 when
`b` was, 0.5 for a tie; the Bradley-Terry likelihood takes it as `a`'s score.

Label file (JSONL), one comparison a line::

    {"a": "seg-12", "b": "seg-40", "preferred": "a"}

`preferred` is "a", "b" or "tie"; `a` and `b` are ids of the segment file's segments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from marl.core.bradley_terry import win_probability
from marl.core.checkpoint import atomic_write_bytes
from marl.core.config import closest

LABELS = {"a": 1.0, "b": 0.0, "tie": 0.5}
"""The `preferred` values of a label line and the score of segment `a` each gives."""


class PreferenceError(ValueError):
    """Segments or labels that cannot be used (unknown ids, unequal lengths, bad lines)."""


class Preference(NamedTuple):
    """One comparison: segment `a` against segment `b`, `label` = a's score (1, 0.5, 0)."""

    a: str
    b: str
    label: float


@dataclass(frozen=True)
class SegmentSet:
    """S segments of equal length L, by id."""

    ids: tuple[str, ...]
    obs: np.ndarray  # [S, L, O] float32 (zeros where not alive)
    actions: np.ndarray  # [S, L] int64
    alive: np.ndarray  # [S, L] bool, False once the episode has ended (absorbing state)
    true_rewards: np.ndarray  # [S, L] float64, the hidden reward (NaN when unknown)

    def __post_init__(self) -> None:
        s = len(self.ids)
        if len(set(self.ids)) != s:
            twice = sorted({i for i in self.ids if self.ids.count(i) > 1})[:3]
            raise PreferenceError(f"segment ids must be unique; repeated: {twice}")
        if self.obs.ndim != 3 or self.obs.shape[0] != s:
            raise PreferenceError(f"obs {self.obs.shape}: expected [S={s}, L, O]")
        shape = self.obs.shape[:2]
        for name in ("actions", "alive", "true_rewards"):
            if getattr(self, name).shape != shape:
                raise PreferenceError(
                    f"{name} {getattr(self, name).shape}: expected {shape} like obs"
                )

    @property
    def length(self) -> int:
        """L, the steps of every segment."""
        return int(self.obs.shape[1])

    def index(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of `ids` (clear error for an unknown one)."""
        where = {sid: i for i, sid in enumerate(self.ids)}
        out = []
        for sid in ids:
            if sid not in where:
                near = closest(sid, self.ids)
                hint = f"; did you mean {' or '.join(near)}?" if near else ""
                raise PreferenceError(f"unknown segment id {sid!r}{hint}")
            out.append(where[sid])
        return np.asarray(out, dtype=np.int64)

    def true_returns(self) -> dict[str, float]:
        """Each segment's summed hidden reward, by id."""
        return dict(zip(self.ids, self.true_rewards.sum(axis=1).tolist()))


def stack_segments(
    ids: Sequence[str],
    obs: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    alive: Sequence[np.ndarray],
    true_rewards: Sequence[np.ndarray],
) -> SegmentSet:
    """A `SegmentSet` from per-segment arrays, which must all have one length."""
    lengths = sorted({len(x) for x in actions})
    if len(lengths) > 1:
        raise PreferenceError(
            f"segments have different lengths {lengths[:5]}: compared segments must have equal "
            "lengths (a longer segment sums more reward); cut them to one length"
        )
    return SegmentSet(
        tuple(ids),
        np.asarray(np.stack(obs), dtype=np.float32),
        np.asarray(np.stack(actions), dtype=np.int64),
        np.asarray(np.stack(alive), dtype=bool),
        np.asarray(np.stack(true_rewards), dtype=np.float64),
    )


def save_segments(path: str | Path, segments: SegmentSet) -> Path:
    """Write the segments as a .npz file (atomically)."""
    import io

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        ids=np.asarray(segments.ids),
        obs=segments.obs,
        actions=segments.actions,
        alive=segments.alive,
        true_rewards=segments.true_rewards,
    )
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_segments(path: str | Path) -> SegmentSet:
    """Read a segment file written by `save_segments`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no segment file at {path}: write one with `marl rlhf segments`")
    with np.load(path, allow_pickle=False) as data:
        missing = {"ids", "obs", "actions", "alive", "true_rewards"} - set(data.files)
        if missing:
            raise PreferenceError(f"{path} is not a segment file: it lacks {sorted(missing)}")
        return SegmentSet(
            tuple(str(i) for i in data["ids"]),
            data["obs"].astype(np.float32),
            data["actions"].astype(np.int64),
            data["alive"].astype(bool),
            data["true_rewards"].astype(np.float64),
        )


def random_pairs(ids: Sequence[str], count: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """`count` pairs of two different ids drawn uniformly."""
    if len(ids) < 2:
        raise PreferenceError(f"{len(ids)} segment(s): at least 2 are needed for a pair")
    first = rng.integers(0, len(ids), count)
    second = (first + rng.integers(1, len(ids), count)) % len(ids)
    return [(ids[i], ids[j]) for i, j in zip(first, second)]


def synthetic_labels(
    pairs: Sequence[tuple[str, str]],
    true_returns: Mapping[str, float],
    temperature: float,
    rng: np.random.Generator,
) -> list[Preference]:
    """A synthetic annotator: prefers `a` with probability sigmoid((R_a - R_b) / temperature)
    of the hidden true returns R (Bradley-Terry noise); temperature 0 is noise-free (equal
    returns give a tie)."""
    if temperature < 0:
        raise PreferenceError(f"temperature={temperature}: expected >= 0 (0 = noise-free)")
    out = []
    for a, b in pairs:
        diff = true_returns[a] - true_returns[b]
        if temperature == 0:
            label = 0.5 if diff == 0 else float(diff > 0)
        else:
            label = float(rng.random() < win_probability(diff / temperature))
        out.append(Preference(a, b, label))
    return out


def write_labels(path: str | Path, labels: Sequence[Preference]) -> Path:
    """Write labels as JSONL (`{"a": id, "b": id, "preferred": "a"|"b"|"tie"}` a line)."""
    names = {v: k for k, v in LABELS.items()}
    lines = [json.dumps({"a": p.a, "b": p.b, "preferred": names[p.label]}) for p in labels]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return Path(path)


def _parse_line(text: str, where: str) -> Preference:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise PreferenceError(f"{where}: not JSON ({err.msg})") from None
    if not isinstance(row, dict) or not {"a", "b", "preferred"} <= set(row):
        raise PreferenceError(f'{where}: expected {{"a": ID, "b": ID, "preferred": "a"|"b"|"tie"}}')
    if row["preferred"] not in LABELS:
        raise PreferenceError(f"{where}: preferred={row['preferred']!r}; expected a, b or tie")
    if row["a"] == row["b"]:
        raise PreferenceError(f"{where}: compares segment {row['a']!r} with itself")
    return Preference(str(row["a"]), str(row["b"]), LABELS[row["preferred"]])


def read_labels(path: str | Path, ids: Sequence[str]) -> list[Preference]:
    """Read a JSONL label file, checking every id against the known segment `ids`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no label file at {path}")
    known, out = set(ids), []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        pref = _parse_line(text, f"{path}:{number}")
        for sid in (pref.a, pref.b):
            if sid not in known:
                near = closest(sid, ids)
                hint = f"; did you mean {' or '.join(near)}?" if near else ""
                raise PreferenceError(
                    f"{path}:{number}: unknown segment id {sid!r} (the segment file has "
                    f"{len(known)} segments){hint}"
                )
        out.append(pref)
    if not out:
        raise PreferenceError(f"{path} holds no labels")
    return out
