"""Every route of the service, in the order the OpenAPI document lists them."""

from __future__ import annotations

from store_sql.service import (
    admin_routes,
    checkpoint_routes,
    event_routes,
    service_routes,
    session_routes,
    transcript_routes,
)
from store_sql.service.routing import Operation


def all_operations() -> list[Operation]:
    return [
        *service_routes.OPERATIONS,
        *session_routes.OPERATIONS,
        *transcript_routes.OPERATIONS,
        *event_routes.OPERATIONS,
        *checkpoint_routes.OPERATIONS,
        *admin_routes.OPERATIONS,
    ]
