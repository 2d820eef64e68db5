"""Scheduler status, the health check, and the OpenAPI description."""

from __future__ import annotations

from typing import Any

from apiutil import Api, api_fixture  # noqa: F401


async def test_status_and_health(api: Api) -> None:
    status = await api.get("/rest/scheduler/status")
    assert status.status_code == 200 and await status.get_json() == "STARTED"
    health = await api.get("/rest/health", user=None)
    assert await health.get_json() == {"status": "ok", "role": "leader"}


async def test_openapi_describes_every_route(api: Api) -> None:
    response = await api.get("/rest/openapi.json", user=None)
    spec = await response.get_json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in (
        ("/rest/scheduler/login", "post"),
        ("/rest/common/logout", "put"),
        ("/rest/scheduler/submit", "post"),
        ("/rest/scheduler/jobs/{job_id}", "get"),
        ("/rest/scheduler/jobs/{job_id}", "delete"),
        ("/rest/scheduler/jobs/{job_id}/tasks/{task_name}/result/log/{stream}", "get"),
        ("/rest/scheduler/jobs/{job_id}/livelog", "get"),
        ("/rest/scheduler/jobs/kill", "put"),
        ("/rest/scheduler/tasks/{task_id}", "get"),
        ("/rest/scheduler/status", "get"),
    ):
        assert method in paths[path], (path, method)
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    rules = {r.rule for r in api.app.url_map.iter_rules() if r.rule.startswith("/rest")}
    assert len(paths) == len(rules)


async def test_openapi_documents_parameters_and_bodies(api: Api) -> None:
    spec = await (await api.get("/rest/openapi.json", user=None)).get_json()
    paths = spec["paths"]

    def params(path: str, method: str) -> dict[str, Any]:
        return {p["name"]: p for p in paths[path][method]["parameters"]}

    kill = params("/rest/scheduler/jobs/kill", "put")
    assert kill["jobsid"]["required"] is True and kill["jobsid"]["in"] == "query"
    assert {"index", "limit"} <= set(params("/rest/scheduler/jobs", "get"))
    paginated = params("/rest/scheduler/jobs/{job_id}/tasks/paginated", "get")
    assert {"offset", "limit"} <= set(paginated)
    log = params("/rest/scheduler/jobs/{job_id}/tasks/{task_name}/result/log/{stream}", "get")
    assert log["stream"]["schema"] == {"type": "string", "enum": ["out", "err", "all"]}
    assert log["job_id"]["schema"]["pattern"] == "^[0-9]+$"
    submit = paths["/rest/scheduler/submit"]["post"]
    assert submit["requestBody"]["required"] is True
    assert "multipart/form-data" in submit["requestBody"]["content"]
    assert {"200", "400", "401"} <= set(submit["responses"])
    assert "requestBody" in paths["/rest/scheduler/login"]["post"]
    assert "204" in paths["/rest/common/logout"]["put"]["responses"]
    # What a standby refuses (and only that) says so.
    assert "503" in submit["responses"]
    assert "503" in paths["/rest/scheduler/jobs/{job_id}/kill"]["put"]["responses"]
    assert "503" not in paths["/rest/scheduler/login"]["post"]["responses"]
    assert "503" not in paths["/rest/scheduler/jobs/{job_id}"]["get"]["responses"]
