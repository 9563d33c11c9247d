"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the route table.

Paths, methods, parameters and request bodies come from each `Operation`; the schemas of
bodies (and of answers, where an operation names its Struct) from the msgspec Structs
(`msgspec.json.schema_components`); every operation but the public ones requires the bearer
token, and lists the error answers it can give.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from store_sql.service.bodies import BODY_SHAPES
from store_sql.service.routing import Operation

_ERROR_TEXT = {
    400: "INVALID: the body, a parameter or a header has the wrong shape",
    401: "UNAUTHORIZED: missing or wrong bearer token",
    404: "NOT_FOUND: no such agent, session, transcript, entry or checkpoint",
    409: "CONFLICT: an expected value did not hold; nothing was written",
    413: "TOO_LARGE: the body is over the server's limit",
    503: "BUSY: retry after Retry-After seconds",
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def document(operations: Iterable[Operation], version: str) -> dict[str, Any]:
    operations = list(operations)
    shapes = {*BODY_SHAPES, *(op.body for op in operations if op.body is not None)}
    shapes |= {op.answer for op in operations if op.answer is not None}
    _, components = msgspec.json.schema_components(
        sorted(shapes, key=lambda s: s.__name__), ref_template="#/components/schemas/{name}"
    )
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [
                            "INVALID",
                            "UNAUTHORIZED",
                            "NOT_FOUND",
                            "CONFLICT",
                            "TOO_LARGE",
                            "BUSY",
                            "INTERNAL",
                        ],
                    },
                    "message": {"type": "string"},
                },
            }
        },
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "store_sql service",
            "version": version,
            "description": "The session and transcript store of an agent gateway over HTTP "
            "(docs/SERVICE.md). Every endpoint but /v1/health needs `Authorization: Bearer "
            "<token>` (the token file beside the database).",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.public:
        out["security"] = []
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "description": p.doc,
            "schema": {"type": p.type},
        }
        for p in op.query
    ]
    params += [
        {"name": p.name, "in": "header", "description": p.doc, "schema": {"type": p.type}}
        for p in op.headers
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.method != "DELETE",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}
            },
        }
    elif op.body_doc is not None:
        out["requestBody"] = {
            "required": True,
            "description": op.body_doc,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    answer: dict[str, Any] = {}
    if op.answer is not None:
        answer["schema"] = {"$ref": f"#/components/schemas/{op.answer.__name__}"}
    responses: dict[str, Any] = {
        str(op.ok_status): {"description": "OK", "content": {op.produces: answer}}
    }
    codes = set(op.errors)
    if not op.public:
        codes.add(401)
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    out["responses"] = responses
    return out
