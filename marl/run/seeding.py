"""The one place that seeds: every random draw in marl takes a generator made here."""

from __future__ import annotations

import numpy as np
import torch


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch's global generator (for weight init) and return a numpy generator."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` seeded with `seed`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
