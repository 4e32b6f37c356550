"""FastAPI host adapter for tidegate.

::

    app = FastAPI(lifespan=my_lifespan)
    gateway = tidegate_fastapi.mount(app, "tidegate.yaml")      # routes under the config's prefix

    @app.get("/summary")
    async def summary(gateway: tidegate_fastapi.GatewayDep) -> dict:
        return await gateway.chat([{"role": "user", "content": "..."}], model="light")

The surfaces show up in ``/docs``; requests to them are served by tidegate itself (same wire
format, errors and streaming as ``TidegateMiddleware``).
"""

from __future__ import annotations

from ._mount import STATE_KEY, GatewayDep, SurfaceRoute, gateway_dependency, mount

__all__ = ["STATE_KEY", "GatewayDep", "SurfaceRoute", "gateway_dependency", "mount"]
