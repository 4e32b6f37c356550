"""What the router decided for one request, for response headers, metrics and logs.

A plain record built once per request; the surface turns it into ``X-Tidegate-Tier``,
``X-Tidegate-Model``, ``X-Tidegate-Cost`` and ``X-Tidegate-Route-Debug``. For streams it exists
before the first chunk (so headers can carry it) and its ``cost`` is filled in when the stream
ends, which is why it is not frozen.
"""

from __future__ import annotations

import msgspec

__all__ = ["RouteDecision"]


class RouteDecision(msgspec.Struct, kw_only=True, gc=False):
    tier: str | None
    """The tier (or standalone model) that answered; None for a degraded answer."""
    model: str | None
    """The deployment (key under ``models``) that answered."""
    requested: str | None = None
    """What routing picked first (tier from the score, an override, or the named model)."""
    score: float | None = None
    """Complexity score in [0, 1] when the scorer ran (``model: auto``)."""
    signals: tuple[tuple[str, float], ...] = ()
    """Signals behind the score, largest contribution first."""
    override: str | None = None
    """``header`` or ``body`` when the client forced the tier."""
    attempts: int = 0
    """Upstream calls made, failed ones included."""
    trail: tuple[str, ...] = ()
    """Each call as ``deployment:outcome`` (``ok``, an HTTP status, ``timeout``, ``error``)."""
    fallback_used: bool = False
    escalated: str | None = None
    """The cascade check that failed and sent the request to the stronger tier."""
    degraded: bool = False
    cost: float = 0.0
    """Price of every successful call this request made, from per-model prices."""

    def debug(self) -> str:
        """One header-safe line: ``tier=strong;score=0.62;signals=code+0.30,length+0.12;...``."""
        parts = [f"tier={self.tier or '-'}", f"model={self.model or '-'}"]
        if self.requested and self.requested != self.tier:
            parts.append(f"requested={self.requested}")
        if self.score is not None:
            parts.append(f"score={self.score:.2f}")
        if self.signals:
            parts.append(
                "signals=" + ",".join(f"{name}{weight:+.2f}" for name, weight in self.signals[:5])
            )
        if self.override:
            parts.append(f"override={self.override}")
        if self.escalated:
            parts.append(f"escalated={self.escalated}")
        if self.attempts > 1 or self.fallback_used:
            parts.append("trail=" + ">".join(self.trail))
        if self.degraded:
            parts.append("degraded=1")
        return ";".join(parts)

    def headers(self) -> list[tuple[str, str]]:
        """The response headers the surfaces send for this decision."""
        return [
            ("x-tidegate-tier", self.tier or "degraded"),
            ("x-tidegate-model", self.model or "none"),
            ("x-tidegate-cost", f"{self.cost:.8f}".rstrip("0").rstrip(".") or "0"),
            ("x-tidegate-route-debug", self.debug()),
        ]
