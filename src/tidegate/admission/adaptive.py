"""``concurrency: auto``: a concurrency limit that follows the upstream's latency.

A gradient limiter in the spirit of Netflix's Gradient2 and TCP Vegas. Finished requests are
grouped into short windows (``interval``, at least ``samples`` results); per window the limit is
scaled by ``tolerance × baseline / recent`` clamped to [0.5, 1] and smoothed. While the upstream
keeps its latency the ratio is 1 and the limit creeps up by ``sqrt(limit)``, probing; once latency passes ``tolerance`` × baseline the limit shrinks (at most halving per
window, before smoothing), so fewer requests pile onto a slowing upstream and the admitted ones keep their latency.
A window with an upstream failure (timeout, 5xx) cuts the limit by ``backoff``, like AIMD.

Choices that matter, learned by driving it with real sleeps:

* Windows, not per-request updates: per request, both the reaction speed and any sample-count
  baseline scale with throughput — at 1,000 req/s a "200-sample" baseline caught up with a
  ten-fold slowdown in 0.2 s and the limit never moved.
* The baseline is the fastest window seen in the last ``baseline_window`` to twice that (two
  rotating minima), not an average: an average drifts up with the very load we cause, a minimum
  holds the no-load latency; rotation lets a permanently slower upstream become the new normal.
* No change while the limit is not being used (peak in-flight below half of it): latency then
  says nothing about headroom, and growing an unused limit would only delay the next back-off.
"""

from __future__ import annotations

import math
import time

from ..config.admission import AdaptiveConfig

__all__ = ["GradientLimit"]


class GradientLimit:
    """One adaptive limit, fed one measured latency per finished request."""

    __slots__ = (
        "_failed", "_inflight", "_min_now", "_min_prev", "_n", "_period_start", "_sum",
        "_window_start", "cfg", "limit", "recent",
    )  # fmt: skip

    def __init__(self, cfg: AdaptiveConfig) -> None:
        self.cfg = cfg
        self.limit = float(cfg.initial)
        self.recent = 0.0
        self._window_start: float | None = None
        self._period_start = 0.0
        self._sum = 0.0
        self._n = 0
        self._inflight = 0
        self._failed = False
        self._min_now = math.inf
        self._min_prev = math.inf

    @property
    def current(self) -> int:
        return int(self.limit)

    @property
    def baseline(self) -> float:
        return min(self._min_now, self._min_prev)

    def observe(
        self, rtt: float, inflight: int, *, failed: bool = False, now: float | None = None
    ) -> int:
        """Record one request that took ``rtt`` s with ``inflight`` running; the limit after."""
        if now is None:
            now = time.perf_counter()
        if self._window_start is None:
            self._window_start = self._period_start = now
        if failed:
            self._failed = True
        else:
            self._sum += rtt
            self._n += 1
        self._inflight = max(self._inflight, inflight)
        cfg = self.cfg
        if now - self._window_start >= cfg.interval and (self._failed or self._n >= cfg.samples):
            self._update(now)
        return int(self.limit)

    def _update(self, now: float) -> None:
        cfg = self.cfg
        limit = self.limit
        if self._failed:
            limit *= cfg.backoff
        elif self._n:
            recent = self.recent = max(self._sum / self._n, 1e-6)
            if now - self._period_start >= cfg.baseline_window:
                self._min_prev, self._min_now = self._min_now, math.inf
                self._period_start = now
            self._min_now = min(self._min_now, recent)
            if self._inflight >= limit / 2:
                gradient = max(0.5, min(1.0, cfg.tolerance * self.baseline / recent))
                # Probe by sqrt(limit) only while latency holds; a slowing upstream gets no
                # headroom added, or the back-off would stall at small limits.
                target = limit + math.sqrt(limit) if gradient >= 1.0 else limit * gradient
                limit = limit * (1 - cfg.smoothing) + target * cfg.smoothing
        self.limit = min(float(cfg.max), max(float(cfg.min), limit))
        self._window_start = now
        self._sum = 0.0
        self._n = 0
        self._inflight = 0
        self._failed = False
