"""The one place that seeds: every random draw in marl takes a generator made from here.

A run has one integer seed. Everything that draws gets its own stream of it, a child of
`numpy.random.SeedSequence(seed)`: `child_seed(seed, *path)` is the seed of the child that
`SeedSequence(seed).spawn(...)` would hand out at that path (`spawn(n)[i]` has path `(i,)`,
its own `spawn(m)[j]` has path `(i, j)`), computed without spawning the siblings. No library
code sets torch's or numpy's global seed; weight initialisation runs under `seeded_init`,
which puts the global torch state back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a generator is made: `marl envs list` needs none
    import torch

INIT, LEARN, WORKERS, EVAL = 0, 1, 2, 3
"""The child streams of a run's seed: weight init, the learner's own draws, acting workers,
and the games against a fixed baseline during training."""


def child_seed(seed: int, *path: int) -> int:
    """The 31-bit seed of the `SeedSequence(seed)` child at `path` (see the module doc)."""
    sequence = np.random.SeedSequence(seed & 0xFFFFFFFFFFFFFFFF, spawn_key=tuple(path))
    return int(sequence.generate_state(1)[0]) & 0x7FFFFFFF


def numpy_generator(seed: int) -> np.random.Generator:
    """A numpy generator seeded with `seed`."""
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded with `seed`."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """Set `generator` to a saved `state`. A state saved on another kind of device (a CUDA
    generator's 16 bytes, a CPU one's 5,056) cannot be set, so the generator is seeded from
    the state's bytes instead, with a warning: a run trained on a GPU still loads on the CPU
    (`marl eval`, leagues, a resume with --device cpu), its draws from there on another
    stream than the original device's."""
    import hashlib
    import warnings

    try:
        generator.set_state(state)
    except RuntimeError:
        if state.numel() == generator.get_state().numel():
            raise  # the right size but not a state: a damaged checkpoint
        digest = hashlib.blake2b(state.cpu().numpy().tobytes(), digest_size=4).digest()
        generator.manual_seed(int.from_bytes(digest, "little") & 0x7FFFFFFF)
        warnings.warn(
            f"a random-generator state saved on another device ({state.numel()} bytes) was "
            f"reseeded from for this {generator.device.type} generator: draws from here differ "
            "from the original device's",
            stacklevel=2,
        )


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules inside this block to initialise their weights from `seed`; the global
    torch generator is restored on exit, so building a learner changes no outside state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
