"""The read-only page for people: `GET /` and its two files, served from `static/`.

The page is a static HTML/JS/CSS shell with no data in it: it reads the store through the
JSON API with the server's token like any other client. So the page is not part of the API:
`PageApp` answers `GET`/`HEAD` of `/` and `/page/<file>` without a token, outside the route
table (and the OpenAPI document), and hands every other request to the API unchanged.

The token is typed into the page (or given once as `#token=...`, a fragment the browser never
sends) and kept in the tab's sessionStorage; see static/page.js. The Content-Security-Policy
allows only this server's own script, style and API, so text from a transcript can never run
as code even if it reached the page as HTML.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from store_sql.service.http_errors import ApiError, error_body

PREFIX: Final = "/page/"

FILES: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    PREFIX + "page.js": ("page.js", "text/javascript; charset=utf-8"),
    PREFIX + "page.css": ("page.css", "text/css; charset=utf-8"),
}

HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _file(name: str) -> bytes:
    return (resources.files("store_sql.service") / "static" / name).read_bytes()


def page_response(path: str) -> Response:
    """The page file at `path`, or NOT_FOUND in the API's error shape."""
    found = FILES.get(path)
    if found is None:
        error = ApiError("NOT_FOUND", f"no page file {path!r}")
        return Response(error_body(error), error.status, None, "application/json")
    name, media = found
    return Response(_file(name), 200, HEADERS, media)


class PageApp:
    """ASGI: the page's files for GET and HEAD of `/` and `/page/...`; the API for the rest."""

    def __init__(self, api: ASGIApp) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path == "/" or path.startswith(PREFIX):
                await page_response(path)(scope, receive, send)
                return
        await self.api(scope, receive, send)
