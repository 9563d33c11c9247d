"""The read-only page for people: `GET /` and its two assets, served from `static/`.

The page is a static HTML/JS/CSS shell with no data in it: it reads the store through the
JSON API with the server's token like any other client, so these routes are public and the
API's auth is untouched. The token is typed into the page (or given once as `#token=...`,
which never reaches the server) and kept in the tab's sessionStorage; see static/page.js.

The Content-Security-Policy allows only this server's own script, style and API, so text
from a transcript can never run as code even if it got into the page as HTML.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from starlette.responses import Response

from store_sql.service.http_errors import ApiError
from store_sql.service.routing import Call, Operation

TAG: Final = "page"

ASSETS: Final = {
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
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
def _asset(name: str) -> bytes:
    return (resources.files("store_sql.service") / "static" / name).read_bytes()


async def page_html(call: Call) -> Response:
    return Response(_asset("index.html"), 200, HEADERS, "text/html; charset=utf-8")


async def page_asset(call: Call) -> Response:
    name = call.params["asset"]
    media = ASSETS.get(name)
    if media is None:
        raise ApiError("NOT_FOUND", f"no page asset {name!r}")
    return Response(_asset(name), 200, HEADERS, media)


OPERATIONS: Final = (
    Operation(
        "GET",
        "/",
        page_html,
        "The read-only page (HTML; it asks for the token and reads this API)",
        TAG,
        public=True,
        produces="text/html",
        errors=(),
    ),
    Operation(
        "GET",
        "/page/{asset}",
        page_asset,
        "The page's script and style sheet",
        TAG,
        public=True,
        produces="text/plain",
        errors=(404,),
    ),
)
