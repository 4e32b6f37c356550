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
    return SurfaceApp(gateway, [openai, AdminSurface(gateway)], fallback=openai)
