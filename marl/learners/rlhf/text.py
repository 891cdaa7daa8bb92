"""The language task's model: a character-level GRU language model with a value head, its
supervised fine-tuning on the shipped corpus, and sampling of answers to prompts.

The corpus (`data/qa.txt`) is lines `q: QUESTION? a: ANSWER`; a prompt is `q: QUESTION? a: `
and the model writes the answer character by character up to a newline (or `max_new`
characters). Sequences are right-padded, so a GRU's outputs at real positions never see the
padding; a prompt's length varies per row, and generation feeds each row its own prompt
until it is used up, then its own samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from marl.core.seeding import seeded_init
from marl.learners.ppo.nets import check_finite, sample_categorical
from marl.learners.rlhf.fitting import fit_minibatches

CORPUS = Path(__file__).with_name("data") / "qa.txt"
"""The shipped corpus: 50 questions, six answers each (written for this task)."""
VOCAB = "\n abcdefghijklmnopqrstuvwxyz.,!?:'"
"""Characters the model reads and writes; index 0 (newline) ends an answer."""
END = 0


def read_corpus(path: str | Path = CORPUS) -> list[str]:
    """The corpus's lines (comments starting with # left out)."""
    lines = [line for line in Path(path).read_text().splitlines() if line and line[0] != "#"]
    for number, line in enumerate(lines, start=1):
        if " a: " not in line or set(line) - set(VOCAB):
            raise ValueError(f"{path}: line {number} {line!r} is not 'q: ...? a: ...' in {VOCAB!r}")
    return lines


def split_line(line: str) -> tuple[str, str]:
    """`q: Q? a: A` -> (prompt `q: Q? a: `, answer `A`)."""
    prompt, answer = line.split(" a: ", 1)
    return prompt + " a: ", answer


def encode(text: str) -> list[int]:
    """Characters -> token ids."""
    return [VOCAB.index(c) for c in text]


def decode(tokens: Sequence[int]) -> str:
    """Token ids -> characters, up to the first newline."""
    text = "".join(VOCAB[t] for t in tokens)
    return text.split("\n", 1)[0]


def pad(rows: Sequence[Sequence[int]], value: int = END) -> Tensor:
    """Right-pad token lists into a [B, L] long tensor."""
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


class CharGRU(nn.Module):
    """Embedding -> GRU -> (next-token logits, value): the policy of the language task."""

    def __init__(self, hidden: int = 128, embed: int = 32, seed: int = 0):
        super().__init__()
        with seeded_init(seed):
            self.embed = nn.Embedding(len(VOCAB), embed)
            self.gru = nn.GRU(embed, hidden, batch_first=True)
            self.head = nn.Linear(hidden, len(VOCAB))
            self.value = nn.Linear(hidden, 1)
        self.hidden_size = hidden

    def forward(self, tokens: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """tokens [B, L] -> (logits [B, L, V] of the next token, values [B, L], last h)."""
        out, h = self.gru(self.embed(tokens), h)
        return self.head(out), self.value(out).squeeze(-1), h


def sft(
    model: CharGRU,
    lines: Sequence[str],
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Teacher-forced next-character training on whole lines (each ends with a newline)."""
    rows = [encode(line + "\n") for line in lines]

    def batch_loss(idx: Tensor) -> Tensor:
        tokens = pad([rows[i] for i in idx], value=-1)
        inputs, targets = tokens[:, :-1].clamp(min=0), tokens[:, 1:]
        logits, _, _ = model(inputs)
        return nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1)

    _, last = fit_minibatches(model.parameters(), len(rows), batch_loss, epochs=epochs, lr=lr,
                              batch=batch, seed=seed, max_grad_norm=1.0)  # fmt: skip
    return {"loss": last}


class Samples(NamedTuple):
    """Prompts with sampled answers, as one right-padded batch of whole sequences."""

    tokens: Tensor  # [B, L] prompt then answer (then padding)
    generated: Tensor  # [B, L] bool, token t was sampled (answer and its newline)
    log_probs: Tensor  # [B, L] log-prob of token t under the sampling model (0 elsewhere)
    answers: list[str]  # the B answers as text


@torch.no_grad()
def sample(
    model: CharGRU,
    prompts: Sequence[str],
    max_new: int,
    generator: torch.Generator,
    greedy: bool = False,
) -> Samples:
    """Answer each prompt by sampling (or argmax) up to a newline or `max_new` characters."""
    encoded = [encode(p) for p in prompts]
    lengths = torch.tensor([len(p) for p in encoded])
    b, width = len(prompts), int(lengths.max()) + max_new
    tokens = torch.full((b, width), END, dtype=torch.long)
    tokens[:, : int(lengths.max())] = pad(encoded)
    generated = torch.zeros(b, width, dtype=torch.bool)
    log_probs = torch.zeros(b, width)
    finished = torch.zeros(b, dtype=torch.bool)
    h = None
    for t in range(width - 1):
        logits, _, h = model(tokens[:, t : t + 1], h)
        logits = logits[:, 0]
        drawn = logits.argmax(-1) if greedy else sample_categorical(logits, generator)
        free = (t + 1 >= lengths) & ~finished  # row t+1 is the model's to write
        tokens[:, t + 1] = torch.where(free, drawn, tokens[:, t + 1])
        generated[:, t + 1] = free
        log_probs[:, t + 1] = torch.where(
            free, torch.log_softmax(logits, -1).gather(-1, drawn[:, None])[:, 0], 0.0
        )
        finished |= free & ((drawn == END) | (t + 2 - lengths >= max_new))
        if finished.all():
            break
    check_finite(log_probs, "the language model")
    answers = [decode(row[n:].tolist()) for row, n in zip(tokens, lengths.tolist())]
    return Samples(tokens, generated, log_probs, answers)


def token_log_probs(model: CharGRU, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Teacher-forced (log-prob of token t, logits predicting t, value before t), each
    [B, L] / [B, L, V]; position 0 has nothing before it and gets zeros."""
    logits, values, _ = model(tokens[:, :-1])
    chosen = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
    zero = torch.zeros_like(chosen[:, :1])
    logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
    return torch.cat([zero, chosen], 1), logits, torch.cat([zero, values], 1)
