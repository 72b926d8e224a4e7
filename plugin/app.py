"""The ASGI application (`plugin.app:app`), built by `create_app`.

This module is the composition root: it wires the adapters (webhooks, jobs, dashboard
pages) to the domain. Domain packages never import the adapters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from dashboard_extension import routes as dashboard_routes
from plugin import __version__
from plugin.api import routes as api_routes
from plugin.context import AppContext
from plugin.kit import gc_pause
from plugin.kit.bodies import CloseUnreadBodies
from plugin.messaging import routes as messaging_routes
from plugin.ops import routes as ops_routes
from plugin.ops.logging import configure as configure_logging
from plugin.saleor import routes as saleor_routes
from plugin.settings import Settings
from plugin.tracking import routes as tracking_routes
from webhooks import routes as webhook_routes

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Starlette:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level)
    ctx = AppContext.create(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from jobs import runtime

        await ctx.open()
        runtime.use_context(ctx)
        runtime.install_dispatcher()
        app.state.broker_health = runtime.broker_health
        worker = None
        if settings.worker_in_process:
            from jobs.inprocess import InProcessWorker

            worker = InProcessWorker(threads=settings.worker_in_process_threads)
            worker.start()
        logger.info(
            "Saleor CRM %s ready; install it in Saleor with %s/api/manifest",
            __version__,
            settings.public_url,
        )
        gc_pause.freeze_startup()
        try:
            yield
        finally:
            runtime.uninstall_dispatcher()
            if worker is not None:
                worker.stop()
            await ctx.close()

    app = Starlette(
        routes=[
            *saleor_routes.routes(),
            *webhook_routes.routes(),
            *ops_routes.routes(),
            *api_routes.routes(),
            *tracking_routes.routes(),
            *messaging_routes.routes(),
            *dashboard_routes.routes(),
            Mount("/static", app=dashboard_routes.static_files(), name="static"),
        ],
        lifespan=lifespan,
        # A body left unread (refused, or over its limit) closes the connection.
        middleware=[Middleware(CloseUnreadBodies)],
    )
    app.state.ctx = ctx
    return app


def __getattr__(name: str) -> Starlette:
    # `uvicorn plugin.app:app` builds the app on first access, not at import time, so
    # tests and tools can import this module with their own settings.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
