"""`/openapi.json` and `/docs`, generated from the routes as mounted and the msgspec types each one declares.

A route declares its types where it is made: `ApiRoute(path, endpoint, "POST", summary=..., body=T,
query=Q, responses={200: R, 404: Problem})` is a Starlette `Route` that also carries the types its
handler decodes and encodes. The document walks the app's routes as Starlette matches them, so a
route mounted with a plain `Route` still appears (flagged `x-undeclared`, without schemas) and the
WebSocket routes are listed under `x-websockets`: nothing mounted is missing from the doc. The
component schemas come from one `msgspec.json.schema_components` over every declared type.
"""

from __future__ import annotations

import html
import http
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, NamedTuple

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

JSON = "application/json"
_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


@dataclass(frozen=True, slots=True)
class Content:
    """A body that is not JSON: `type`'s schema (or `schema` itself) under `media_type`."""

    media_type: str
    type: Any = str
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """What one method of one route takes and answers; each type is a msgspec type (JSON) or a `Content`."""

    summary: str
    responses: Mapping[int, Any]
    body: Any = None
    body_required: bool = True
    query: type[msgspec.Struct] | None = None
    """A Struct whose fields are the query parameters (the handler decodes the query into it)."""
    path_params: Mapping[str, Any] = field(default_factory=dict)
    """The type of each path parameter; `str` when not named."""
    description: str = ""


class ApiRoute(Route):
    """A route of one method that declares its `Operation` for the OpenAPI document."""

    def __init__(self, path: str, endpoint: Callable[..., Any], method: str, **operation: Any) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.operation = Operation(**operation)


class _Found(NamedTuple):
    path: str
    method: str
    name: str
    operation: Operation | None


def document(routes: Sequence[BaseRoute], *, title: str = "agentbus") -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of `routes` (an app's routes, mounts included)."""
    found = list(_walk(routes, ""))
    declared = [f.operation for f in found if f.operation is not None]
    types = list(dict.fromkeys(t for op in declared for t in _types(op)))
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for item in found:
        paths.setdefault(item.path, {})[item.method.lower()] = _operation(item, schema_of, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": _version(), "description": _DESCRIPTION},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY},
        "x-websockets": [
            {"path": path, "description": _first_line(route.endpoint)} for path, route in _sockets(routes, "")
        ],
    }


_DESCRIPTION = (
    "Multi-agent LLM conversations as event-sourced actors. With AGENTBUS_API_KEY or a JWT key set, every route "
    "but /, /healthz, /readyz and /metrics needs the key (X-API-Key, Authorization: Bearer, or ?api_key=) or a "
    "user's token (Authorization: Bearer, or ?token= on the socket); a user sees only their own sessions."
)
_SECURITY = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def _version() -> str:
    try:
        return metadata.version("agentbus")
    except metadata.PackageNotFoundError:
        return "0"


def _first_line(endpoint: Callable[..., Any]) -> str:
    return (endpoint.__doc__ or endpoint.__name__).strip().split("\n", 1)[0]


def _path(path: str) -> str:
    """The OpenAPI form of a Starlette path: `{name:path}` is `{name}`."""
    return _PARAM.sub(r"{\1}", path)


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterator[_Found]:
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from _walk(route.routes, prefix + route.path)
            else:  # a mounted app (static files, say): whatever lies under it
                yield _Found(_path(prefix + route.path) + "/{path}", "GET", route.name or "mount", None)
        elif isinstance(route, ApiRoute):
            yield _Found(_path(prefix + route.path), route.method, route.name, route.operation)
        elif isinstance(route, Route):
            methods = sorted(route.methods or {"GET"})
            for method in [m for m in methods if m != "HEAD"] or methods:
                yield _Found(_path(prefix + route.path), method, route.name, None)


def _sockets(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[str, WebSocketRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _sockets(route.routes, prefix + route.path)
        elif isinstance(route, WebSocketRoute):
            yield _path(prefix + route.path), route


def _types(op: Operation) -> Iterator[Any]:
    for declared in (op.body, *op.responses.values(), *op.path_params.values()):
        if declared is None:
            continue
        if isinstance(declared, Content):
            if declared.schema is None:
                yield declared.type
        else:
            yield declared


def _operation(item: _Found, schema_of: Mapping[Any, Any], components: dict[str, Any]) -> dict[str, Any]:
    names = _PARAM.findall(item.path)
    op = item.operation
    if op is None:
        return {
            "operationId": f"{item.name}_{item.method.lower()}",
            "summary": f"{item.name} (undeclared: no schemas)",
            "x-undeclared": True,
            "parameters": [_parameter(name, "path", {"type": "string"}, True) for name in names],
            "responses": {"default": {"description": "not declared"}},
        }
    parameters = [
        _parameter(n, "path", schema_of[op.path_params[n]] if n in op.path_params else {"type": "string"}, True)
        for n in names
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query, components)
    doc: dict[str, Any] = {"operationId": item.name, "summary": op.summary}
    if op.description:
        doc["description"] = op.description
    doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": op.body_required, "content": _content(op.body, schema_of)}
    doc["responses"] = {
        str(status): _response(status, declared, schema_of) for status, declared in sorted(op.responses.items())
    }
    return doc


def _response(status: int, declared: Any, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    """One documented answer; `None` declares one without a body."""
    answer: dict[str, Any] = {"description": http.HTTPStatus(status).phrase}
    if declared is not None:
        answer["content"] = _content(declared, schema_of)
    return answer


def _content(declared: Any, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    if isinstance(declared, Content):
        schema = declared.schema if declared.schema is not None else schema_of[declared.type]
        return {declared.media_type: {"schema": dict(schema)}}
    return {JSON: {"schema": schema_of[declared]}}


def _parameter(name: str, where: str, schema: Mapping[str, Any], required: bool) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": dict(schema)}


def _query_parameters(query: type[msgspec.Struct], components: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter per field of `query`; an optional field's `null` is its absence, not a value."""
    (ref,), found = msgspec.json.schema_components([query], ref_template=_REF)
    struct = found.pop(ref["$ref"].rsplit("/", 1)[-1])
    components.update(found)
    required = set(struct.get("required", ()))
    parameters = []
    for name, schema in struct["properties"].items():
        options = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
        if len(options) == 1:
            schema = {**options[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
        parameters.append(_parameter(name, "query", schema, name in required))
    return parameters


async def openapi_json(request: Request) -> Response:
    """The OpenAPI document of this gateway."""
    return Response(msgspec.json.encode(_cached(request)), media_type=JSON)


async def docs(request: Request) -> Response:
    """A page listing every route with its parameters, bodies and responses, and every schema."""
    return HTMLResponse(render_html(_cached(request)))


def _cached(request: Request) -> dict[str, Any]:
    # The routes never change once the app is built: generate the document once per app.
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = document(request.app.routes)
    doc: dict[str, Any] = state.openapi
    return doc


def render_html(doc: Mapping[str, Any]) -> str:
    """Render the document as one self-contained page (no script, no stylesheet from elsewhere)."""
    esc = html.escape
    rows = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", ()))
            body = _refs(op["requestBody"]["content"]) if "requestBody" in op else ""
            answers = "<br>".join(
                f"{esc(status)} {_refs(r.get('content', {}))}" for status, r in op["responses"].items()
            )
            rows.append(
                f"<tr><td><b>{esc(method.upper())}</b></td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op.get('summary', ''))}</td><td>{esc(params)}</td><td>{body}</td><td>{answers}</td></tr>"
            )
    sockets = "".join(
        f"<li><code>{esc(s['path'])}</code> {esc(s['description'])}</li>" for s in doc.get("x-websockets", ())
    )
    schemas = "".join(
        f'<h3 id="{esc(name)}">{esc(name)}</h3><pre>{esc(json.dumps(schema, indent=2))}</pre>'
        for name, schema in sorted(doc["components"]["schemas"].items())
    )
    info = doc["info"]
    return _PAGE.format(
        title=esc(info["title"]),
        version=esc(info["version"]),
        description=esc(info["description"]),
        rows="".join(rows),
        sockets=sockets,
        schemas=schemas,
    )


def _refs(content: Mapping[str, Any]) -> str:
    """The media types of a body and the schemas they name, linked to the schemas section."""
    parts = []
    for media, entry in content.items():
        text = json.dumps(entry.get("schema", {}))
        names = dict.fromkeys(re.findall(r"#/components/schemas/([^\"]+)", text))
        links = ", ".join(f'<a href="#{html.escape(n)}">{html.escape(n)}</a>' for n in names)
        parts.append(f"{html.escape(media)} {links or html.escape(text)}")
    return "<br>".join(parts)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }}
pre {{ background: #f6f6f6; padding: 8px; overflow: auto; max-height: 24em; }}
</style></head><body>
<h1>{title} API <small>{version}</small></h1>
<p>{description}</p>
<p>The same as a machine-readable document: <a href="openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<h2>Routes</h2>
<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th><th>body</th><th>responses</th></tr>
{rows}</table>
<h2>WebSockets</h2><ul>{sockets}</ul>
<h2>Schemas</h2>
{schemas}
</body></html>
"""


routes = [
    ApiRoute(
        "/openapi.json",
        openapi_json,
        "GET",
        summary="This API as an OpenAPI 3.1 document",
        responses={200: dict[str, Any]},
    ),
    ApiRoute("/docs", docs, "GET", summary="This API as a page", responses={200: Content("text/html")}),
]
