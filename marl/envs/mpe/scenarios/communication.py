"""The talking scenarios: simple_reference, simple_speaker_listener and simple_crypto."""

from __future__ import annotations

import torch

from marl.envs.mpe.features import flat, mix_rewards, relative, squared_norm
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.world import WorldState, make_spec


def landmark_at(s: WorldState, num_agents: int, landmark: torch.Tensor) -> torch.Tensor:
    """[B, k, 2]: positions of landmarks indexed [B, k]."""
    index = (num_agents + landmark).unsqueeze(-1).expand(-1, -1, 2)
    return s.pos.gather(1, index)


class SimpleReference:
    """mpe2 simple_reference_v3: each agent tells the other which landmark to reach."""

    landmark_colors = ((0.75, 0.25, 0.25), (0.25, 0.75, 0.25), (0.25, 0.25, 0.75))

    def __init__(self, device: torch.device, dtype: torch.dtype, local_ratio: float = 0.5) -> None:
        """Build two talking agents (10-symbol messages) and three landmarks."""
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {local_ratio}")
        names = ["agent_0", "agent_1"]
        self.spec = make_spec(names, [0.05] * 3, [False] * 3, collide=False, dim_c=10)
        self.place = Placement(self.spec, device, dtype)
        self.colors = self.place.tensor(self.landmark_colors)
        self.local_ratio = local_ratio

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Each agent gets a random landmark for the other; all positions uniform."""
        goals = self.place.choice(generator, num_envs, 3, 2)
        return self.place.state(*self.place.scatter(generator, num_envs), goals=goals)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[vel, landmarks - pos, colour of the landmark meant for the other, other's message]."""
        me = s.pos[:, :2]
        parts = (s.vel, flat(relative(s.pos[:, 2:], me)), self.colors[s.goals], s.comm.flip(1))
        return [torch.cat(parts, -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Local: minus the other agent's distance to my landmark; shared: their mean."""
        gap = squared_norm(s.pos[:, :2].flip(1) - landmark_at(s, 2, s.goals)).sqrt()
        return mix_rewards(-gap, -gap.mean(-1), self.local_ratio)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None


class SimpleSpeakerListener:
    """mpe2 simple_speaker_listener_v4: an immobile speaker guides a mute listener."""

    landmark_colors = ((0.65, 0.15, 0.15), (0.15, 0.65, 0.15), (0.15, 0.15, 0.65))

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        """Build the speaker (immovable), the listener (silent) and three landmarks."""
        names = ["speaker_0", "listener_0"]
        self.spec = make_spec(
            names,
            [0.04] * 3,
            [False] * 3,
            size=0.075,
            collide=False,
            movable=[False, True],
            silent=[False, True],
            dim_c=3,
        )
        self.place = Placement(self.spec, device, dtype)
        self.colors = self.place.tensor(self.landmark_colors)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """A random goal landmark; all positions uniform in [-1, 1]^2."""
        goal = self.place.choice(generator, num_envs, 3, 1)
        return self.place.state(*self.place.scatter(generator, num_envs), goals=goal)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """Speaker: the goal's colour; listener: [vel, landmarks - pos, speaker's message]."""
        listener = s.pos[:, 1:2]
        seen = (s.vel[:, 1:], flat(relative(s.pos[:, 2:], listener)), s.comm[:, :1])
        return [self.colors[s.goals], torch.cat(seen, -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Both: minus the listener's squared distance to the goal."""
        gap2 = squared_norm(s.pos[:, 1:2] - landmark_at(s, 2, s.goals))
        return -gap2.expand(-1, 2)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None


class SimpleCrypto:
    """mpe2 simple_crypto_v3: alice sends bob a goal under a shared key; eve eavesdrops."""

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        """Build eve, bob and alice (all immovable talkers, 4-symbol messages), 2 landmarks."""
        names = ["eve_0", "bob_0", "alice_0"]
        self.spec = make_spec(names, [0.05] * 2, [False] * 2, collide=False, movable=False, dim_c=4)
        self.place = Placement(self.spec, device, dtype)
        self.codes = torch.eye(4, device=device, dtype=dtype)  # landmark i's colour is e_i

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """A random goal and a random key (each one of the two landmarks' codes)."""
        goals = self.place.choice(generator, num_envs, 2, 2)  # [:, 0] goal, [:, 1] key
        return self.place.state(*self.place.scatter(generator, num_envs), goals=goals)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """eve: [alice's message]; bob: [key, alice's message]; alice: [goal, key]."""
        goal, key = self.codes[s.goals[:, 0]], self.codes[s.goals[:, 1]]
        alice_says = s.comm[:, 2]
        blocks = (alice_says, torch.cat((key, alice_says), -1), torch.cat((goal, key), -1))
        return [b.unsqueeze(1) for b in blocks]

    def reward(self, s: WorldState) -> torch.Tensor:
        """eve: minus its guess error; bob and alice: eve's error minus bob's (silence scores 0)."""
        goal = self.codes[s.goals[:, 0]].unsqueeze(1)
        error = (s.comm[:, :2] - goal).square().sum(-1)  # [B, 2]: eve, bob
        error = torch.where((s.comm[:, :2] == 0).all(-1), 0.0, error)
        good = error[:, 0] - error[:, 1]
        return torch.stack((-error[:, 0], good, good), 1)

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None
