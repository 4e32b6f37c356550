"""Wire protocols served under the prefix: OpenAI, Dify (workflows) and admin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .admin import AdminSurface
from .base import Surface, SurfaceApp
from .openai import OpenAISurface

if TYPE_CHECKING:
    from ..gateway import Gateway

__all__ = ["AdminSurface", "OpenAISurface", "Surface", "SurfaceApp", "build_surface_app"]


def build_surface_app(gateway: Gateway) -> SurfaceApp:
    openai = OpenAISurface(gateway)
    surfaces: list[Surface] = [openai, AdminSurface(gateway)]
    if gateway.config.workflows:
        from .dify import DifySurface  # imports the engine; only when workflows are configured

        surfaces.append(DifySurface(gateway))
    return SurfaceApp(gateway, surfaces, fallback=openai)
