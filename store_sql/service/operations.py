"""Every route of the service, in the order the OpenAPI document lists them, and the
route that publishes that document."""

from __future__ import annotations

from starlette.responses import Response

from store_sql.service import (
    admin_routes,
    checkpoint_routes,
    event_routes,
    service_routes,
    session_routes,
    transcript_routes,
)
from store_sql.service.openapi import document
from store_sql.service.responses import json_response
from store_sql.service.routing import Call, Operation


async def openapi(call: Call) -> Response:
    return json_response(document(all_operations(), service_routes.package_version()))


def all_operations() -> list[Operation]:
    return [
        *service_routes.OPERATIONS,
        Operation("GET", "/openapi.json", openapi, "This document", "service", errors=()),
        *session_routes.OPERATIONS,
        *transcript_routes.OPERATIONS,
        *event_routes.OPERATIONS,
        *checkpoint_routes.OPERATIONS,
        *admin_routes.OPERATIONS,
    ]
