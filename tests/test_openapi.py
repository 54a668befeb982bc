"""`/openapi.json` and `/docs`: every mounted route, its schemas from the msgspec types the code uses, and the
API held to them by schemathesis, through a real `agentbus up`; and every route under a real database outage.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute

from gateway import create_app
from gateway.answers import Id, Problem
from gateway.openapi import ApiRoute, document, render_html
from gateway.rest import CreateSessionBody
from gateway.send import MessageResponse, SendBody
from projections import SessionView
from schemas import InvalidId, validate_id
from tests.conftest import new_database, outage
from tests.system import System, delete_command_stream

API = "/api/v1/chat"
SCHEMATHESIS_BUDGET = 60.0
"""Seconds the whole schemathesis run may take (it takes about half that on 2 shared cores)."""


@pytest.fixture(scope="module")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    async with new_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
async def running(tmp_path_factory: pytest.TempPathFactory, nats_url: str, database_url: str) -> AsyncIterator[System]:
    """One `agentbus up` for the document and the schemathesis run."""
    prefix = "openapi" + uuid.uuid4().hex[:8]
    env = {
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATABASE_URL": database_url,
        "AGENTBUS_SUBJECT_PREFIX": prefix,
        "AGENTBUS_ANSWER_TIMEOUT": "20",
    }
    system = System(tmp_path_factory.mktemp("openapi") / "data", env).start()
    yield system
    assert system.stop() == 0
    await delete_command_stream(nats_url, prefix)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


async def ping(request: Any) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def socket(websocket: Any) -> None:
    """A socket of the test."""


def test_a_route_without_a_declaration_still_appears_and_a_declared_one_has_its_schemas() -> None:
    app = Starlette(
        routes=[
            Route("/plain", ping, methods=["GET", "POST"]),
            Mount(
                "/api",
                routes=[
                    ApiRoute("/things/{thing_id}", ping, "GET", summary="A thing", responses={200: SessionView}),
                    Route("/files/{name:path}", ping),
                    WebSocketRoute("/ws/{thing_id}", socket),
                ],
            ),
        ]
    )
    doc = document(app.routes)
    found = {(m, p): op for m, p, op in operations(doc)}
    assert set(found) == {
        ("GET", "/plain"),
        ("POST", "/plain"),
        ("GET", "/api/things/{thing_id}"),
        ("GET", "/api/files/{name}"),
    }
    assert (
        found["GET", "/plain"]["x-undeclared"] is True and "x-undeclared" not in found["GET", "/api/things/{thing_id}"]
    )
    assert [p["name"] for p in found["GET", "/api/files/{name}"]["parameters"]] == ["name"]
    schema = found["GET", "/api/things/{thing_id}"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SessionView"}
    assert doc["x-websockets"] == [{"path": "/api/ws/{thing_id}", "description": "A socket of the test."}]


def test_the_gateway_s_document_holds_every_route_with_the_msgspec_schemas_of_its_types() -> None:
    app = create_app(None)  # type: ignore[arg-type]  # the document reads only the routes
    doc = document(app.routes)
    found = {(m, p) for m, p, _ in operations(doc)}
    expected = {
        ("GET", "/"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
        ("GET", "/docs"), ("GET", f"{API}/sessions"), ("POST", f"{API}/sessions"),
        ("GET", f"{API}/sessions/{{session_id}}"), ("DELETE", f"{API}/sessions/{{session_id}}"),
        ("GET", f"{API}/sessions/{{session_id}}/messages"), ("POST", f"{API}/sessions/{{session_id}}/messages"),
        ("GET", f"{API}/sessions/{{session_id}}/events"), ("GET", f"{API}/boards/{{board_id}}"),
        ("GET", f"{API}/teams/{{team_id}}"),
    }  # fmt: skip
    assert expected <= found
    assert doc["x-websockets"][0]["path"] == f"{API}/ws/{{session_id}}"
    _, generated = msgspec.json.schema_components(
        [SessionView, CreateSessionBody, SendBody, MessageResponse, Problem], ref_template="#/components/schemas/{name}"
    )
    for name, schema in generated.items():
        assert doc["components"]["schemas"][name] == schema, name
    send = doc["paths"][f"{API}/sessions/{{session_id}}/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SendBody"}
    assert {"200", "413", "422", "429", "503", "504"} <= set(send["responses"])
    limit = next(
        p for p in doc["paths"][f"{API}/sessions/{{session_id}}/messages"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1} and not limit["required"]


ID_PATTERN = msgspec.json.schema(Id)["pattern"]


@given(st.from_regex(ID_PATTERN) | st.text(max_size=140))
def test_the_id_pattern_of_the_document_is_the_rule_of_validate_id(value: str) -> None:
    # In JSON Schema (ECMA regex) `^…$` spans the whole text; Python's `$` also matches before a final newline.
    documented = re.fullmatch(ID_PATTERN.removeprefix("^").removesuffix("$"), value) is not None
    try:
        validate_id(value)
        valid = True
    except InvalidId:
        valid = False
    assert documented == valid, value


def test_the_page_is_self_contained_and_names_every_route_and_schema() -> None:
    doc = document(create_app(None).routes)  # type: ignore[arg-type]
    page = render_html(doc)
    for _, path, _ in operations(doc):
        assert f"<code>{path}</code>" in page
    for name in doc["components"]["schemas"]:
        assert f'id="{name}"' in page
    assert "<script" not in page and "https://" not in page and "http://" not in page


async def test_openapi_json_and_docs_are_served_by_a_running_gateway(running: System) -> None:
    async with httpx.AsyncClient(base_url=running.http_url) as client:
        served = await client.get("/openapi.json")
        page = await client.get("/docs")
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.json()["openapi"].startswith("3.1") and f"{API}/sessions" in served.json()["paths"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="openapi.json"' in page.text and f"<code>{API}/sessions</code>" in page.text


def run_a_board_and_a_team(system: System, session_id: str) -> tuple[str, str]:
    """Give the run a board and a team to read back: their ids, from the session's log."""
    with httpx.Client(base_url=system.http_url + API, timeout=60) as client:
        for task in ("@board rounds=1 Should we ship on Friday?", "@team Write a haiku about logs"):
            assert client.post(f"/sessions/{session_id}/messages", json={"content": task}).status_code == 200
        events = [e["event"] for e in client.get(f"/sessions/{session_id}/events").json()]
    board = next(e["board_id"] for e in events if e["type"] == "board_started")
    team = next(e["team_id"] for e in events if e["type"] == "team_formed")
    return board, team


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def examine(strategy: Any, checks: list[Any], http: requests.Session) -> int:
    """Call and check 8 cases of `strategy`; return how many were called. A failed check raises."""
    called = 0

    @settings(
        max_examples=8,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        nonlocal called
        called += 1
        case.call_and_validate(session=http, checks=checks, timeout=30)

    call()
    return called


def test_schemathesis_finds_no_5xx_and_no_response_that_contradicts_the_document(running: System) -> None:
    """Every operation, valid and invalid inputs, on ids that exist and ids that do not; bounded to 60 s."""
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(running.http_url + "/openapi.json")
    with httpx.Client(base_url=running.http_url + API) as client:
        sessions = [client.post("/sessions", json={}).json()["session_id"] for _ in range(2)]
    board_id, team_id = run_a_board_and_a_team(running, sessions[0])
    existing = {"session_id": sessions[0], "board_id": board_id, "team_id": team_id}
    http = requests.Session()
    failures: list[str] = []
    examples = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        names = [p.name for p in operation.path_parameters]
        ids = {**existing, "session_id": sessions[1]} if operation.method.upper() == "DELETE" else existing
        fixed = {name: ids[name] for name in names if name in ids}  # DELETE closes the other session
        negatable = bool(operation.query) or bool(operation.body)  # beside the path parameters
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategies = []
            if names or negatable or not mode.is_negative:
                strategies.append(operation.as_strategy(generation_mode=mode))
            if fixed and (negatable or not mode.is_negative):
                strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed))
            checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS
            for strategy in strategies:
                try:
                    examples += examine(strategy, checks, http)
                except Unsatisfiable as exc:  # no invalid value exists (a free string in a path, say): nothing to send
                    if not mode.is_negative:
                        failures.append(f"{operation.label} ({mode.value}):\n{exc}")
                except (FailureGroup, AssertionError, requests.RequestException) as exc:
                    failures.append(f"{operation.label} ({mode.value}):\n{exc}")  # every operation's, in one report
    took = time.monotonic() - started
    assert failures == [], "\n\n".join(failures)
    assert examples > 100
    assert took < SCHEMATHESIS_BUDGET, f"the run took {took:.0f} s"


def minimal_body(op: dict[str, Any], components: dict[str, Any]) -> dict[str, Any] | None:
    """A body holding each required string field of the operation's schema (`{"content": "x"}`, say)."""
    json_body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if json_body is None:
        return None  # no body, or not JSON (the upload's form): sent without one
    ref = json_body["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = components[ref]
    return {
        name: "during the outage"
        for name in schema.get("required", ())
        if schema["properties"][name].get("type") == "string"
    }


NEEDS_THE_DATABASE = [
    ("GET", f"{API}/sessions"),
    ("POST", f"{API}/sessions"),
    ("GET", f"{API}/sessions/{{session_id}}"),
    ("DELETE", f"{API}/sessions/{{session_id}}"),
    ("GET", f"{API}/sessions/{{session_id}}/messages"),
    ("POST", f"{API}/sessions/{{session_id}}/messages"),
    ("GET", f"{API}/sessions/{{session_id}}/events"),
    ("GET", f"{API}/boards/{{board_id}}"),
    ("GET", f"{API}/teams/{{team_id}}"),
    ("PATCH", f"{API}/sessions/{{session_id}}"),
    ("GET", "/api/v1/admin/departments"),
    ("GET", "/api/v1/admin/departments/{department_id}"),
    ("PUT", "/api/v1/admin/departments/{department_id}/members/{user_id}"),
    ("DELETE", "/api/v1/admin/departments/{department_id}/members/{user_id}"),
]


async def test_every_route_answers_a_database_outage_with_503_and_a_clear_body(
    system: System, session_id: str, postgres_url: str
) -> None:
    """Each operation of the document, during a real outage: 503 `service_unavailable` naming the database.

    A route that needs no database (the page, liveness, metrics, this document, the agents, which the
    workers answer) still answers; `/readyz` says `database_down`; none answers 500.
    """
    async with httpx.AsyncClient(base_url=system.http_url, timeout=30) as client:
        doc = (await client.get("/openapi.json")).json()
        ids = {"session_id": session_id, "board_id": "b1", "team_id": "t1", "name": "x.txt", "path": "app.js"}
        ids |= {"department_id": "d1", "user_id": "u1", "quota_type": "tokens", "period": "day", "agent": "assistant"}
        answers: dict[tuple[str, str], httpx.Response] = {}
        async with outage(postgres_url, system.env["AGENTBUS_DATABASE_URL"]):
            for method, path, op in operations(doc):
                body = minimal_body(op, doc["components"]["schemas"])
                answers[method, path] = await client.request(method, path.format(**ids), json=body)
    unavailable = set()
    for (method, path), response in answers.items():
        where = f"{method} {path}: {response.status_code} {response.text[:300]}"
        assert response.status_code != 500, where
        if response.status_code == 503:
            problem = response.json()
            assert problem["code"] in ("service_unavailable", "database_down") and "database" in problem["detail"], (
                where
            )
            unavailable.add((method, path))
    assert set(NEEDS_THE_DATABASE) <= unavailable
    assert ("GET", "/readyz") in unavailable and answers["GET", "/readyz"].json()["code"] == "database_down"
    for path in ("/", "/static/{path}", "/healthz", "/metrics", "/openapi.json", "/docs"):
        assert answers["GET", path].status_code == 200, path
