"""`GET /rest/openapi.json`: an OpenAPI 3 description generated from the routes.

Generating it from the URL map and the handlers' docstrings keeps it complete by
construction: a route cannot be added without appearing here.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Response, current_app, jsonify

import simple_scheduler

blueprint = Blueprint("openapi", __name__)

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_PUBLIC = {
    "/rest/health",
    "/rest/openapi.json",
    "/rest/scheduler/login",
    "/rest/common/login",
    "/rest/common/connected",
    "/rest/scheduler/isconnected",
    "/rest/scheduler/session",
}
_ERROR = {"$ref": "#/components/responses/Error"}


def _path(rule: str) -> tuple[str, list[str]]:
    names: list[str] = []

    def sub(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        if converter == "matrix":
            return ""  # `;NAME=value` suffix: documented in the description
        names.append(name)
        return "{" + name + "}"

    return _PARAM.sub(sub, rule), names


def build_spec() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.rule.startswith("/rest"):
            continue
        path, names = _path(rule.rule)
        view = current_app.view_functions[rule.endpoint]
        doc = (view.__doc__ or "").strip()
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
                "summary": doc.splitlines()[0] if doc else rule.endpoint,
                "tags": [rule.endpoint.split(".", 1)[0]],
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in names
                ],
                "responses": {"200": {"description": "OK"}, "default": _ERROR},
            }
            if "<matrix:" in rule.rule:
                operation["description"] = (
                    "Matrix parameters `;NAME=value` after the path set workflow variables."
                )
            if path not in _PUBLIC:
                operation["security"] = [{"sessionid": []}, {"bearer": []}, {"cookie": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "simple-scheduler REST API (ProActive Scheduler dialect)",
            "version": simple_scheduler.__version__,
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "sessionid": {"type": "apiKey", "in": "header", "name": "sessionid"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
            "responses": {
                "Error": {
                    "description": "An error: 400, 401, 403, 404, 409, 413, 429 or 500",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "httpErrorCode": {"type": "integer"},
                                    "errorMessage": {"type": "string"},
                                },
                                "required": ["httpErrorCode", "errorMessage"],
                            }
                        }
                    },
                }
            },
        },
    }


@blueprint.get("/openapi.json")
async def openapi() -> Response:
    """This description of the API, as OpenAPI 3."""
    return jsonify(build_spec())
