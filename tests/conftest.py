"""Shared test settings: one torch thread (the CI machine has two cores)."""

import torch

torch.set_num_threads(1)
