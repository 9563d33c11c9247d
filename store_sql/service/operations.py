"""Every route of the service, in the order the OpenAPI document lists them."""

from __future__ import annotations

from store_sql.service import service_routes, session_routes
from store_sql.service.routing import Operation


def all_operations() -> list[Operation]:
    return [*service_routes.OPERATIONS, *session_routes.OPERATIONS]
