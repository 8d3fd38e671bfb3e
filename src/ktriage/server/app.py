"""The fleet server: `create_app` builds the FastAPI application over one `FleetStore`, `run` serves it.

Errors are one line everywhere: a 4xx says what was wrong with the request, and anything unexpected is a 500
with a one-line message; a traceback never goes into a reply (uvicorn's log keeps it for the operator).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ktriage import __version__
from ktriage.fleet import FleetStore
from ktriage.server import api, pages
from ktriage.server.deps import Settings

__all__ = ["create_app", "run"]

DEFAULT_MAX_BODY = 32 << 20
EXIT_CANNOT_START = 3  # the CLI's "could not be read" status; uvicorn exits 3 too when it cannot bind


def create_app(
    db_url: str | None, *, scrub: bool = False, webhook: str | None = None, max_body: int = DEFAULT_MAX_BODY
) -> FastAPI:
    """The application over the store at `db_url` (None: `$KTRIAGE_DB`, else the user's SQLite file).

    The store is opened here, so a wrong URL fails at start-up rather than on the first request."""
    store = FleetStore.open(db_url, webhook=webhook)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="ktriage fleet",
        version=__version__,
        description="Kernel crash reports from many machines, grouped into buckets with their known bugs and fixes.",
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN: off; the description is /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.settings = Settings(scrub=scrub, max_body=max_body)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static")
    _install_error_handlers(app)
    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if _wants_html(request):
            return pages.templates.TemplateResponse(
                request, "error.html", {"status": exc.status_code, "detail": detail}, status_code=exc.status_code
            )
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors: list[Any] = list(exc.errors())
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        msg = f"{where}: {first.get('msg', 'invalid request')}" if where else str(first.get("msg", "invalid request"))
        if _wants_html(request):
            return pages.templates.TemplateResponse(
                request, "error.html", {"status": 422, "detail": msg}, status_code=422
            )
        return JSONResponse({"detail": msg}, status_code=422)

    async def internal_error(request: Request, exc: Exception) -> Response:
        msg = f"internal error ({type(exc).__name__}); the server log has the details"
        if _wants_html(request):
            return HTMLResponse(f"<!doctype html><title>500</title><p>{msg}</p>", status_code=500)
        return JSONResponse({"detail": msg}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


def run(db_url: str | None, host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> None:
    """Serve the fleet on host:port until interrupted (uvicorn, one process; the store's calls use its threadpool).

    `settings` are `create_app`'s keywords (scrub, webhook, max_body). A database that cannot be opened is one
    line on stderr and exit status 3, as uvicorn itself exits 3 when the port is taken: never a traceback."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app = create_app(db_url, **settings)
    except (SQLAlchemyError, OSError, ValueError, ImportError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"ktriage: cannot open the fleet database: {first}", file=sys.stderr)
        sys.exit(EXIT_CANNOT_START)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False)
