"""The workbench's HTTP routes (Starlette): one page and a small JSON API over a ``Session``.

    GET  /                    the page (static/index.html; static/app.js, static/app.css)
    GET  /api/files           {"files": {name: source}}
    POST /api/evaluate        {"path", "source", "line", "offset"} -> diagnostics and the rule's report
    POST /api/save            {"path", "source"} -> {"source": formatted} or 422 {"diagnostics"}
    GET  /api/unresolved      rows the model gets wrong that no rule decides, grouped by label
    GET  /api/candidates?label=L   the miner's candidate literals for label L

Request bodies are bounded (``Session.max_source_bytes`` plus room for the JSON around it).
Serve it with ``serve(session, host, port)``; it binds to 127.0.0.1 unless told otherwise.
Another web page open in the same browser must not be able to drive it: POSTs must say
``Content-Type: application/json`` (which a cross-site page cannot send without a CORS preflight
this server never grants), and the ``Host`` header must name the address served (no DNS
rebinding).

    >>> app = create_app(Session("data.parquet", "rules/"))     # doctest: +SKIP
"""

from __future__ import annotations

import json
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kdsl.errors import KdslError, RuleError
from kdsl.workbench.session import Session, _diagnostic

STATIC = resources.files("kdsl.workbench") / "static"


def create_app(session: Session, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Starlette:
    """The Starlette application serving ``session``; ``hosts``: the names the ``Host`` header
    may give."""

    async def body(request: Request) -> dict:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise _Refused(415, "send the request as application/json")
        limit = session.max_source_bytes * 2 + 4096  # a file escaped as JSON, plus the other keys
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > limit:
                raise _Refused(413, f"request body over {limit} bytes")
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            raise _Refused(400, "the request body is not JSON") from None
        if not isinstance(value, dict) or not isinstance(value.get("path", ""), str) \
                or not isinstance(value.get("source", ""), str):
            raise _Refused(400, "expected an object with string 'path' and 'source'")
        return value

    async def index(request):
        return FileResponse(str(STATIC / "index.html"), media_type="text/html")

    async def files(request):
        return JSONResponse({"files": session.sources(), "has_model": session.has_model,
                             "rows": session.table.num_rows})

    async def evaluate(request):
        value = await body(request)
        line, offset = _integer(value.get("line", 0)), _integer(value.get("offset", 0))
        result = await run_in_threadpool(session.evaluate, value.get("path", ""), value.get("source", ""),
                                         line, offset)
        return JSONResponse(result)

    async def save(request):
        value = await body(request)
        try:
            formatted = await run_in_threadpool(session.save, value.get("path", ""), value.get("source", ""))
        except RuleError as error:
            return JSONResponse({"diagnostics": [_diagnostic(d) for d in error.diagnostics]}, status_code=422)
        return JSONResponse({"source": formatted})

    async def unresolved(request):
        return JSONResponse(await run_in_threadpool(session.unresolved))

    async def candidates(request):
        label = request.query_params.get("label")
        if not label:
            raise _Refused(400, "name a label: /api/candidates?label=...")
        return JSONResponse({"label": label, "candidates": await run_in_threadpool(session.candidates, label)})

    async def refused(request, error):
        return JSONResponse({"error": str(error.message)}, status_code=error.status)

    async def bad_input(request, error):
        return JSONResponse({"error": str(error)}, status_code=400)

    return Starlette(
        routes=[Route("/", index), Route("/api/files", files), Route("/api/evaluate", evaluate, methods=["POST"]),
                Route("/api/save", save, methods=["POST"]), Route("/api/unresolved", unresolved),
                Route("/api/candidates", candidates),
                Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static")],
        exception_handlers={_Refused: refused, KdslError: bad_input},
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
    )


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _integer(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refused(400, "'line' and 'offset' are non-negative integers")
    return value


def serve(session: Session, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the workbench with uvicorn until interrupted."""
    import uvicorn

    # Bound elsewhere on purpose (--host), the page is reached by names this process cannot know.
    hosts = ("127.0.0.1", "localhost") if host in ("127.0.0.1", "localhost") else ("*",)
    uvicorn.run(create_app(session, hosts=hosts), host=host, port=port, log_level="warning")
