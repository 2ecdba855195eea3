"""The examples the project wrote (already tokenized and masked, so tokenization cannot differ),
each epoch's order, and batches split across the ranks.

data/train.jsonl and data/validation.jsonl hold one example per line:
{"line": <record's line in the dataset>, "ids": [token ids], "mask": "0001111"}, where mask[t] = 1
when ids[t] is a target (predicted from ids[<t]). The split and the order are the engine's:
epoch e visits the training examples in epoch_order(n, seed, e), the engine's mulberry32 shuffle.
"""
import json
import math
from dataclasses import dataclass
from typing import List, Sequence

import torch


@dataclass
class Example:
    line: int
    ids: List[int]
    mask: List[int]  # 1 where ids[t] is a target

    @property
    def targets(self) -> int:
        return sum(self.mask[1:])


def read_examples(path: str) -> List[Example]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                r = json.loads(text)
                ex = Example(int(r["line"]), [int(i) for i in r["ids"]], [1 if c == "1" else 0 for c in r["mask"]])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: not an exported example ({e})") from None
            if len(ex.ids) != len(ex.mask) or len(ex.ids) < 2:
                raise ValueError(f"{path}:{n}: ids and mask must have the same length, at least 2")
            out.append(ex)
    return out


# ---------------------------------------------------------------------------------------------
# The engine's random order (engine/rng.ts): mulberry32 seeded through the murmur3 finalizer
# ---------------------------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    return (a * b) & M32


def _scramble(x: int) -> int:
    x = _imul(x ^ (x >> 16), 0x85EBCA6B)
    x = _imul(x ^ (x >> 13), 0xC2B2AE35)
    return (x ^ (x >> 16)) & M32


class Rng:
    def __init__(self, seed: int):
        self.s = _scramble(int(seed) & M32)

    def next(self) -> float:  # uniform in [0, 1)
        self.s = (self.s + 0x6D2B79F5) & M32
        t = self.s
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296

    def shuffle(self, a: list) -> list:  # Fisher-Yates in place
        for i in range(len(a) - 1, 0, -1):
            j = math.floor(self.next() * (i + 1))
            a[i], a[j] = a[j], a[i]
        return a


def epoch_order(n: int, seed: int, epoch: int) -> List[int]:
    """The order of the training examples in `epoch`: a function of (seed, epoch) alone, as the engine's."""
    return Rng(seed * 1_000_003 + epoch + 1).shuffle(list(range(n)))


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

def rank_share(batch: Sequence[Example], rank: int, world: int) -> List[Example]:
    """This rank's contiguous slice of a step's batch; sizes differ by at most one."""
    n = len(batch)
    start = rank * n // world
    return list(batch[start:(rank + 1) * n // world])


def micro_batches(share: Sequence[Example], micro: int, count: int, filler: Example):
    """`count` micro-batches of at most `micro` examples, each (examples, scale): ranks with fewer
    real ones run a zero-weighted filler so that every rank takes part in every collective."""
    chunks = [list(share[i:i + micro]) for i in range(0, len(share), micro)]
    out = [(c, 1.0) for c in chunks]
    while len(out) < count:
        out.append(([filler], 0.0))
    return out


def make_batch(examples: Sequence[Example], pad_id: int, device) -> tuple:
    """Right-padded next-token batch: ids, targets [B, T] and weights [B, T] (1 on target tokens)."""
    T = max(len(e.ids) - 1 for e in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), pad_id, dtype=torch.long)
    weights = torch.zeros(B, T)
    for b, e in enumerate(examples):
        n = len(e.ids) - 1
        ids[b, :n] = torch.tensor(e.ids[:-1])
        targets[b, :n] = torch.tensor(e.ids[1:])
        weights[b, :n] = torch.tensor(e.mask[1:], dtype=torch.float32)
    return ids.to(device), targets.to(device), weights.to(device)


def target_tokens(examples: Sequence[Example]) -> int:
    return sum(e.targets for e in examples)
