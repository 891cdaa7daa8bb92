"""`gym/PendulumPixels-v1`: gymnasium's Pendulum-v1 seen through a 64x64 RGB image.

Pendulum's own renderer draws a 500x500 pygame surface; resizing that every step would
cost more than the rest of the env. The wrapper draws the pole itself with numpy from the
angle in the observation: a white background, a red pole of 0.4 image widths from the
centre (up is angle 0, as in Pendulum), a black pivot. A single image shows the angle, not
the angular velocity: the learner has to infer speed from consecutive frames.

The id is registered with gymnasium on import (max 200 steps, as Pendulum-v1), so the gym
family lists it as `gym/PendulumPixels-v1`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

PIXEL_ID = "PendulumPixels-v1"
SIZE = 64
POLE_LENGTH = 0.4 * SIZE
POLE_HALF_WIDTH = 2.5
PIVOT_RADIUS = 2.5
POLE_RGB = np.array([204, 77, 77], dtype=np.uint8)
PIVOT_RGB = np.array([0, 0, 0], dtype=np.uint8)


def draw_pendulum(theta: float, size: int = SIZE) -> np.ndarray:
    """The pole at angle `theta` (0: upright, counter-clockwise positive) as uint8 RGB
    [size, size, 3]."""
    scale = size / SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    cx = cy = size / 2.0
    tip = np.array([cx - POLE_LENGTH * scale * np.sin(theta),
                    cy - POLE_LENGTH * scale * np.cos(theta)])  # fmt: skip
    seg = tip - np.array([cx, cy])
    rel_x, rel_y = xs - cx, ys - cy
    along = np.clip((rel_x * seg[0] + rel_y * seg[1]) / float(seg @ seg), 0.0, 1.0)
    dist = np.hypot(rel_x - along * seg[0], rel_y - along * seg[1])
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    image[dist <= POLE_HALF_WIDTH * scale] = POLE_RGB
    image[np.hypot(rel_x, rel_y) <= PIVOT_RADIUS * scale] = PIVOT_RGB
    return image


class PendulumPixels(gymnasium.ObservationWrapper):
    """Pendulum's observation (cos, sin, angular velocity) replaced by its 64x64 image."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.observation_space = gymnasium.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        """The image of the pole at the observed angle."""
        cos, sin = float(observation[0]), float(observation[1])
        return draw_pendulum(float(np.arctan2(sin, cos)))


def make_pendulum_pixels(**kwargs: Any) -> gymnasium.Env:
    """Pendulum-v1 (its kwargs, e.g. `g`) wrapped to 64x64 pixels."""
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    return PendulumPixels(PendulumEnv(**kwargs))


def register_with_gymnasium() -> None:
    """Make `PendulumPixels-v1` a gymnasium id (once)."""
    if PIXEL_ID not in gymnasium.envs.registry:
        gymnasium.register(PIXEL_ID, entry_point=make_pendulum_pixels, max_episode_steps=200)
