"""Capped exponential back-off with jitter, for every retry loop of the project."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential back-off with jitter (AWS architecture blog).

    ``delay(attempt)`` is drawn from ``[ceiling / 2, ceiling]`` where the ceiling
    doubles per attempt up to ``cap_s``.
    """

    initial_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap_s, self.initial_s * self.factor ** max(0, attempt))
        r = rng.random() if rng is not None else random.random()
        # Never less than half the ceiling: full jitter can retry immediately,
        # which turns a dead peer into a busy loop.
        return ceiling * (0.5 + 0.5 * r)
