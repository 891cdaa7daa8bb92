"""collect_treasure: collectors pick up typed treasures and carry them to matching deposits.

Besides physics, each step runs mpe2's `post_step`: pickups (treasure by treasure, the
first free collector touching it takes it), deliveries, and respawns of treasures that
were already gone. `WorldState.goals` holds, per world:
[holding per collector (-1: nothing) | alive per treasure | type per treasure | events],
where events counts this step's pickups plus deliveries (each worth 5 to everyone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marl.envs.mpe.features import contacts, distance, drop_self, flat, nearest, relative
from marl.envs.mpe.scenario import Placement
from marl.envs.mpe.world import WorldState, make_spec

MAX_TYPES = 6
"""mpe2 has colours for at most six deposit (treasure) types."""
GONE = -999.0
"""Where mpe2 parks a picked-up treasure until it respawns."""


class CollectTreasure:
    """mpe2 collect_treasure_v1."""

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype,
        num_collectors: int = 6,
        num_deposits: int = 2,
        num_treasures: int = 6,
    ) -> None:
        """Collectors (radius 0.05), heavier deposits (0.075), treasures (0.025); no contacts."""
        if min(num_collectors, num_deposits, num_treasures) < 1 or num_deposits > MAX_TYPES:
            raise ValueError(
                f"need >= 1 collectors, treasures and 1..{MAX_TYPES} deposits, got "
                f"{num_collectors}, {num_treasures}, {num_deposits}"
            )
        nc, d = num_collectors, num_deposits
        names = [f"collector_{i}" for i in range(nc)] + [f"deposit_{i}" for i in range(d)]
        self.spec = make_spec(
            names,
            [0.025] * num_treasures,
            [False] * num_treasures,
            size=[0.05] * nc + [0.075] * d,
            collide=False,
            silent=True,
            accel=1.5,
            max_speed=1.0,
            mass=[1.0] * nc + [2.25] * d,
            dim_c=2,
        )
        self.place = Placement(self.spec, device, dtype)
        self.num_collectors, self.num_types, self.num_treasures = nc, d, num_treasures
        self.types = torch.arange(d, device=device)
        eye = torch.eye(d, device=device, dtype=dtype)
        # What others see of each deposit: [its type one-hot | nothing held].
        self.deposit_code = torch.cat((eye, torch.zeros_like(eye)), -1)

    def columns(self, s: WorldState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """holding [B, Nc], alive [B, T] bool and type [B, T] out of `s.goals`."""
        nc, t = self.num_collectors, self.num_treasures
        g = s.goals
        return g[:, :nc], g[:, nc : nc + t].bool(), g[:, nc + t : nc + 2 * t]

    def draw_treasures(
        self, generator: torch.Generator, num_envs: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh treasures: positions [B, T, 2] in [-0.95, 0.95]^2 and types [B, T]."""
        t = self.num_treasures
        pos = self.place.uniform(generator, (num_envs, t, 2), -0.95, 0.95)
        return pos, self.place.choice(generator, num_envs, self.num_types, t)

    def reset(self, num_envs: int, generator: torch.Generator) -> WorldState:
        """Agents uniform in [-1, 1]^2, every treasure alive with a random type."""
        agents = self.place.uniform(generator, (num_envs, self.spec.num_agents, 2), -1, 1)
        pos, kind = self.draw_treasures(generator, num_envs)
        nothing = torch.full((num_envs, self.num_collectors), -1, device=kind.device)
        goals = torch.cat((nothing, torch.ones_like(kind), kind, kind[:, :1] * 0), 1)
        return self.place.state(agents, pos, goals=goals)

    def post_step(self, s: WorldState, generator: torch.Generator) -> WorldState:
        """Pickups, then deliveries, then respawns, as mpe2's post_step orders them."""
        nc, n = self.num_collectors, self.spec.num_agents
        holding, alive, kind = self.columns(s)
        treasures = s.pos[:, n:]
        touch = contacts(treasures, s.pos[:, :nc], self.place.tensor(0.025), 0.05)  # [B, T, Nc]
        free, taken = holding < 0, []
        for t in range(self.num_treasures):  # sequential: a collector takes one treasure
            can = free & touch[:, t] & alive[:, t : t + 1]
            took = can.any(-1)
            first = F.one_hot(can.to(torch.uint8).argmax(-1), nc).bool() & took.unsqueeze(-1)
            holding = torch.where(first, kind[:, t : t + 1], holding)
            free = free & ~first
            taken.append(took)
        took = torch.stack(taken, 1)  # [B, T]
        at_deposit = contacts(s.pos[:, :nc], s.pos[:, nc:n], self.place.tensor(0.05), 0.075)
        delivered = (at_deposit & (holding.unsqueeze(-1) == self.types)).any(-1)
        holding = torch.where(delivered, -1, holding)
        fresh_pos, fresh_kind = self.draw_treasures(generator, s.pos.shape[0])
        respawn = ~alive
        treasures = torch.where(took.unsqueeze(-1), GONE, treasures)
        treasures = torch.where(respawn.unsqueeze(-1), fresh_pos, treasures)
        kind = torch.where(respawn, fresh_kind, kind)
        events = took.sum(-1, keepdim=True) + delivered.sum(-1, keepdim=True)
        goals = torch.cat((holding, (alive & ~took | respawn).long(), kind, events), 1)
        return s._replace(pos=torch.cat((s.pos[:, :n], treasures), 1), goals=goals)

    def observe(self, s: WorldState) -> list[torch.Tensor]:
        """[pos, vel, (held type)] + others by distance + treasures by distance (gone last)."""
        nc, n = self.num_collectors, self.spec.num_agents
        holding, alive, kind = self.columns(s)
        me = s.pos[:, :n]
        held = (holding.unsqueeze(-1) == self.types).to(me.dtype)  # [B, Nc, D]
        codes = torch.cat(
            (torch.cat((held * 0, held), -1), self.deposit_code.expand(me.shape[0], -1, -1)), 1
        )
        to_others = relative(me, me)
        seen = torch.cat((to_others, s.vel.unsqueeze(1).expand_as(to_others)), -1)
        seen = torch.cat((seen, codes.unsqueeze(1).expand(-1, n, -1, -1)), -1)
        seen, dist = drop_self(seen), drop_self(distance(me, me))
        others = flat(nearest(seen, dist, n - 1))
        to_treasures = relative(s.pos[:, n:], me)  # [B, N, T, 2]
        kinds = (kind.unsqueeze(-1) == self.types).to(me.dtype).unsqueeze(1).expand(-1, n, -1, -1)
        found = torch.cat((to_treasures, kinds), -1) * alive.view(-1, 1, alive.shape[1], 1)
        key = torch.where(alive.unsqueeze(1), distance(s.pos[:, n:], me), 1e6)
        treasures = flat(nearest(found, key, self.num_treasures))
        own = torch.cat((me, s.vel), -1)
        collectors = torch.cat((own[:, :nc], held, others[:, :nc], treasures[:, :nc]), -1)
        return [collectors, torch.cat((own[:, nc:], others[:, nc:], treasures[:, nc:]), -1)]

    def reward(self, s: WorldState) -> torch.Tensor:
        """Shaping toward treasures / deposits / carriers, -5 per collector overlap, +5 events."""
        nc, n = self.num_collectors, self.spec.num_agents
        holding, alive, _ = self.columns(s)
        me = s.pos[:, :nc]
        shared = 5 * s.goals[:, -1:].to(me.dtype)
        overlap = drop_self(distance(me, me) < 0.1).sum(-1)
        to_treasure = torch.where(alive.unsqueeze(1), distance(s.pos[:, n:], me), torch.inf)
        nearest_treasure = to_treasure.amin(-1).nan_to_num(posinf=0.0)
        to_deposit = distance(s.pos[:, nc:n], me)  # [B, Nc, D]
        own_deposit = to_deposit.gather(-1, holding.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        chase = torch.where(holding < 0, nearest_treasure, own_deposit)
        collectors = -5 * overlap - 0.1 * chase
        carriers = holding.unsqueeze(-1) == self.types  # [B, Nc, D]
        to_carrier = torch.where(carriers, to_deposit, torch.inf).amin(1)  # [B, D]
        centre = me.mean(1, keepdim=True)
        to_centre = distance(centre, s.pos[:, nc:n]).squeeze(-1)
        deposits = -0.1 * torch.where(carriers.any(1), to_carrier, to_centre)
        return torch.cat((collectors, deposits), 1) + shared

    def is_terminal(self, s: WorldState) -> torch.Tensor | None:
        """Never ends early."""
        return None
