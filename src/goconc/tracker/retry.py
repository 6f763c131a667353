"""How a tracker retries a batch its sink refused: exponential backoff with jitter.

The n-th retry waits ``initial * multiplier**(n-1)`` seconds, capped at
``max_delay``, spread by ``±jitter`` (a fraction) so that many trackers
recovering from the same outage do not retry in lockstep.  After ``attempts``
sink calls in all the batch goes to the dead-letter file; ``attempts=None``
retries until a shutdown deadline ends the wait.  With the defaults the
delays are 0.05, 0.1, 0.2 ... 3.2 s, then 5 s, and a batch is given up after
ten failed calls, about 16 s of failures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry policy: ``Retry(attempts=10, initial=0.05, multiplier=2, max_delay=5, jitter=0.2)``.

    Raises ``ValueError`` naming the argument for an impossible policy.
    """

    attempts: int | None = 10
    initial: float = 0.05
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            isinstance(self.attempts, bool) or not isinstance(self.attempts, int)
        ):
            raise TypeError(f"attempts must be an int or None, got {self.attempts!r}")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 or None, got {self.attempts!r}")
        for name in ("initial", "max_delay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not (0 <= self.jitter <= 1):
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        if retry < 1:
            raise ValueError(f"retry must be >= 1, got {retry!r}")
        exp = min(retry - 1, 1000)  # keeps multiplier**exp finite
        try:
            base = min(self.max_delay, self.initial * self.multiplier**exp)
        except OverflowError:
            base = self.max_delay
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))

    def gives_up_after(self, calls: int) -> bool:
        """Whether ``calls`` failed sink calls exhaust the policy."""
        return self.attempts is not None and calls >= self.attempts
