"""`Series`: the usage samples of one account window as parallel columns (time, used %, reset).

Plain data at the model layer (imports nothing of the project): the ledger readers fill it,
the pacing core reads it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field


@dataclass
class Series:
    """Usage samples of one account window, as parallel columns sorted by time (epoch s).

    `resets` holds NaN where a sample had no reset time. Appends in time order are O(1);
    an out-of-order append marks the series for one sort before the next read.
    """

    t: list[float] = field(default_factory=list)
    used: list[float] = field(default_factory=list)
    resets: list[float] = field(default_factory=list)
    confidence: str = "unknown"
    minutes: float | None = None
    _sorted: bool = True
    _newest: float = -math.inf

    def add(
        self,
        t: float,
        used: float,
        resets: float | None,
        confidence: str | None = None,
        minutes: float | None = None,
    ) -> None:
        if self.t and t < self.t[-1]:
            self._sorted = False
        if confidence is not None and t >= self._newest:
            self.confidence = confidence
        self._newest = max(self._newest, t)
        self.t.append(t)
        self.used.append(used)
        self.resets.append(math.nan if resets is None else resets)
        if minutes:
            self.minutes = minutes

    def ensure_sorted(self) -> None:
        if self._sorted:
            return
        order = sorted(range(len(self.t)), key=self.t.__getitem__)
        self.t = [self.t[i] for i in order]
        self.used = [self.used[i] for i in order]
        self.resets = [self.resets[i] for i in order]
        self._sorted = True

    def drop_before(self, t: float) -> None:
        """Forget samples older than `t` (bounded memory)."""
        self.ensure_sorted()
        i = bisect_left(self.t, t)
        if i:
            del self.t[:i], self.used[:i], self.resets[:i]

    def drop_first(self, n: int) -> None:
        """Forget the `n` oldest samples (a hard cap on memory)."""
        self.ensure_sorted()
        del self.t[:n], self.used[:n], self.resets[:n]

    def __len__(self) -> int:
        return len(self.t)
