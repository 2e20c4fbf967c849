"""
Flood control: a token bucket per connection.  Pure arithmetic on times
given by the caller, so tests drive it with any clock.
"""

from __future__ import annotations

from attrs import define, field


@define
class TokenBucket:
    """
    Allows C{burst} lines at once, then C{rate} lines per second.

    The bucket starts full.  L{take} spends one token if there is one and
    otherwise says how long to wait until there will be.
    """

    rate: float
    burst: int
    now: float
    tokens: float = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if now > self.now:
            self.tokens = min(
                float(self.burst), self.tokens + (now - self.now) * self.rate
            )
            self.now = now

    def take(self, now: float) -> float:
        """
        Spend a token at time C{now}.

        @return: C{0.0} if the line may go now, otherwise how many seconds
            until a token is available (nothing is spent then).
        """
        self._refill(now)
        # Within rounding of a whole token counts as one: otherwise a timer
        # set for the exact refill time could wake up 1e-15 s too early.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(self.tokens - 1.0, 0.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled completely by C{now}."""
        self._refill(now)
        return self.tokens >= self.burst
