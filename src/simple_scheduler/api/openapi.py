"""`GET /rest/openapi.json`: an OpenAPI 3 description generated from the routes.

Generating it from the URL map and the handlers' docstrings keeps it complete by
construction: a route cannot be added without appearing here.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from quart import Blueprint, Response, current_app, jsonify

import simple_scheduler
from simple_scheduler.api import standby

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


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    # An empty value means "not given" (the default), as for the Java server.
    return {
        "name": name,
        "in": "query",
        "schema": schema,
        "description": description,
        "allowEmptyValue": True,
        **extra,
    }


def _int(minimum: int) -> dict[str, Any]:
    return {"type": "integer", "format": "int64", "minimum": minimum}


_JOB_PAGE = [
    _query("index", _int(-1), "first job of the page (newest first); -1: from the start"),
    _query("limit", _int(-1), "jobs in the page; -1: all of them"),
]
_TASK_PAGE = [
    _query("offset", _int(0), "first task of the page"),
    _query("limit", _int(0), "tasks in the page (at most 256)"),
]
_LOG_OFFSET = [_query("offset", _int(0), "first byte to send (the X-Next-Offset of the last call)")]
_JOB_IDS = [
    _query(
        "jobsid",
        {"type": "array", "items": _int(0), "minItems": 1},
        "the job ids (repeat the parameter, or separate them with commas)",
        required=True,
        allowEmptyValue=False,
        style="form",
        explode=True,
    )
]


def _workflow_body(required: bool) -> dict[str, Any]:
    return {
        "required": required,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "variables": {
                            "type": "string",
                            "description": "a JSON object of variable name -> value",
                        },
                    },
                    "required": ["file"],
                }
            },
            "application/xml": {"schema": {"type": "string"}},
        },
    }


_FLAT_FORM = {
    "type": "object",
    "properties": {
        "commandFileContent": {
            "type": "string",
            "description": "one command per line (argv, no shell); blank and # lines skipped",
        },
        "jobName": {"type": "string", "minLength": 1},
        "selectionScriptContent": {"type": "string", "description": "ignored"},
        "selectionScriptExtension": {"type": "string", "description": "ignored"},
    },
    "required": ["commandFileContent", "jobName"],
}
_FLAT_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {"schema": _FLAT_FORM},
        "multipart/form-data": {"schema": _FLAT_FORM},
    },
}

_PASSWORD_FIELDS = {
    "username": {"type": "string", "minLength": 1},
    "password": {"type": "string"},
}


def _login_body(required: bool) -> dict[str, Any]:
    """username + password, or (multipart only) a credential file part."""
    form: dict[str, Any] = {"type": "object", "properties": _PASSWORD_FIELDS}
    multipart: dict[str, Any] = {
        "type": "object",
        "properties": {**_PASSWORD_FIELDS, "credential": {"type": "string", "format": "binary"}},
    }
    if required:
        form["required"] = ["username", "password"]
        multipart["anyOf"] = [{"required": ["username", "password"]}, {"required": ["credential"]}]
    return {
        "required": required,
        "content": {
            "application/x-www-form-urlencoded": {"schema": form},
            "multipart/form-data": {"schema": multipart},
        },
    }


#: What the URL map cannot say: query parameters and bodies, by endpoint.
_EXTRA: dict[str, dict[str, Any]] = {
    "session.login": {"requestBody": _login_body(True)},
    "session.renew": {"requestBody": _login_body(False)},
    "jobs.submit": {"requestBody": _workflow_body(True)},
    # Always 200: a missing or bad workflow is reported in the JobValidationData.
    "jobs.validate": {"requestBody": _workflow_body(False)},
    "jobs.list_job_ids": {"parameters": _JOB_PAGE},
    "jobs.list_jobs_info": {"parameters": _JOB_PAGE},
    "jobs.kill_jobs": {"parameters": _JOB_IDS},
    "jobs.remove_jobs": {"parameters": _JOB_IDS},
    "submission.submit_flat": {"requestBody": _FLAT_BODY},
    "submission.resubmit_jobs": {"parameters": _JOB_IDS},
    "tasks.task_names_paginated": {"parameters": _TASK_PAGE},
    "tasks.task_states_paginated": {"parameters": _TASK_PAGE},
    "logs.task_log": {"parameters": _LOG_OFFSET},
    "logs.job_log": {"parameters": _LOG_OFFSET},
    "logs.livelog": {
        "parameters": [_query("allLogs", {"type": "boolean"}, "true: all the output again")]
    },
}
#: Path parameters that are not free strings.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "job_id": {"type": "string", "pattern": "^[0-9]+$"},
    "task_id": {"type": "string", "pattern": "^[0-9]+t[0-9]+$"},
    "stream": {"type": "string", "enum": ["out", "err", "all"]},
    "priority_name": {
        "type": "string",
        "enum": ["IDLE", "LOWEST", "LOW", "NORMAL", "HIGH", "HIGHEST"],
    },
}
#: Success statuses other than 200.
_SUCCESS = {"session.logout": "204", "submission.change_priority": "204"}


def _responses(endpoint: str, method: str, public: bool, has_input: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {_SUCCESS.get(endpoint, "200"): {"description": "OK"}}
    if has_input:
        responses["400"] = _ERROR
    if not public:
        responses["401"] = _ERROR
    if standby.refused_on_standby(endpoint, method):
        responses["503"] = {
            "description": "This server is a standby: send it to the leader "
            f"(`{standby.LEADER_HEADER}`), or retry after `Retry-After`",
        }
    responses["default"] = _ERROR
    return responses


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
        doc = inspect.cleandoc(view.__doc__ or "")
        # The docstring's first line is the summary; the paragraphs after it, if any,
        # say what the answer means (e.g. restart's true/false).
        rest = doc.partition("\n")[2].strip()
        details = "\n\n".join(" ".join(par.split()) for par in rest.split("\n\n"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
                "summary": doc.splitlines()[0] if doc else rule.endpoint,
                "tags": [rule.endpoint.split(".", 1)[0]],
                "parameters": [
                    {
                        "name": n,
                        "in": "path",
                        "required": True,
                        "schema": _PATH_SCHEMAS.get(n, {"type": "string"}),
                    }
                    for n in names
                ],
            }
            extra = _EXTRA.get(rule.endpoint, {})
            operation["parameters"] += extra.get("parameters", [])
            if "requestBody" in extra:
                operation["requestBody"] = extra["requestBody"]
            has_input = bool(extra)
            operation["responses"] = _responses(
                rule.endpoint, method, path in _PUBLIC, has_input
            )
            if details:
                operation["description"] = details
            if "<matrix:" in rule.rule:
                matrix = "Matrix parameters `;NAME=value` after the path set workflow variables."
                operation["description"] = f"{details}\n\n{matrix}".strip()
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
                    "description": "An error: 400, 401, 403, 404, 409, 413, 429, 500 or 503",
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
