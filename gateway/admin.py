"""The admin REST API under /api/v1/admin: departments, their members and quotas (admins and the service only).

Each change is a command decided on the department's stream and recorded in
the log (`projections.departments`); the answer is the department as the read
models show it once the projector has applied the change, so a quota raised
here is in force for the next model call when the answer arrives.
"""

from __future__ import annotations

import typing

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from projections.department_views import DepartmentView
from projections.departments import DepartmentRefused, Departments
from schemas.departments import AddMember, CreateDepartment, DepartmentCommand, Limit, RemoveMember, SetQuota
from schemas.quotas import Period, QuotaType

from .answers import Id, answers, json_response, problem, read_body
from .auth import caller_of, sees_all
from .context import GatewayContext
from .openapi import ApiRoute

_REFUSED_STATUS = {"unknown_department": 404, "invalid_department_id": 400, "invalid_user_id": 400, "busy": 409}
_QUOTA_TYPES = typing.get_args(QuotaType)
_PERIODS = typing.get_args(Period)


class DepartmentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    department_id: str
    name: str = ""


class QuotaBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit: Limit | None
    """The most requests or tokens per period; null removes the quota."""


def _ctx(request: Request) -> GatewayContext:
    return request.app.state.ctx


def _forbidden(request: Request) -> Response | None:
    if sees_all(caller_of(request)):
        return None
    return problem(403, "only admins manage departments and quotas", "forbidden")


async def _carry_out(request: Request, command: DepartmentCommand) -> Response:
    """Record the command's events and answer the department once the read models show them."""
    ctx = _ctx(request)
    outcome = await Departments(ctx.event_log).handle(command)
    if isinstance(outcome, DepartmentRefused):
        return problem(_REFUSED_STATUS.get(outcome.code, 400), outcome.message, outcome.code)
    await ctx.read_models.wait_caught_up(ctx.event_log)
    view = await ctx.read_models.departments.get_department(command.department_id)
    if view is None:
        return problem(504, "the change was recorded but is not readable yet", "projection_lag")
    return json_response(view)


async def list_departments(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    ctx = _ctx(request)
    await ctx.read_models.wait_caught_up(ctx.event_log)
    return json_response(await ctx.read_models.departments.list_departments())


async def create_department(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    body = await read_body(request, DepartmentBody)
    if isinstance(body, Response):
        return body
    return await _carry_out(request, CreateDepartment(department_id=body.department_id, name=body.name))


async def get_department(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    ctx = _ctx(request)
    department_id = request.path_params["department_id"]
    await ctx.read_models.wait_caught_up(ctx.event_log)
    view = await ctx.read_models.departments.get_department(department_id)
    if view is None:
        return problem(404, f"department {department_id!r} does not exist", "unknown_department")
    return json_response(view)


async def add_member(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    params = request.path_params
    return await _carry_out(request, AddMember(department_id=params["department_id"], user_id=params["user_id"]))


async def remove_member(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    params = request.path_params
    return await _carry_out(request, RemoveMember(department_id=params["department_id"], user_id=params["user_id"]))


async def set_quota(request: Request) -> Response:
    if (refused := _forbidden(request)) is not None:
        return refused
    params = request.path_params
    quota_type, period = params["quota_type"], params["period"]
    if quota_type not in _QUOTA_TYPES or period not in _PERIODS:
        detail = f"a quota is of {' or '.join(_QUOTA_TYPES)} per {' or '.join(_PERIODS)}"
        return problem(404, detail, "unknown_quota")
    body = await read_body(request, QuotaBody)
    if isinstance(body, Response):
        return body
    command = SetQuota(department_id=params["department_id"], quota_type=quota_type, period=period, limit=body.limit)
    return await _carry_out(request, command)


_DEPARTMENT = "/departments/{department_id}"
_PATH = {"department_id": Id}
_QUOTA_PATH = {"department_id": Id, "quota_type": QuotaType, "period": Period}

routes = [
    ApiRoute(
        "/departments",
        list_departments,
        "GET",
        summary="Every department with its members, quotas (limit and current) and usage",
        responses=answers(list[DepartmentView], 403),
    ),
    ApiRoute(
        "/departments",
        create_department,
        "POST",
        summary="Create a department (again: a no-op)",
        body=DepartmentBody,
        responses=answers(DepartmentView, 400, 403, 422),
    ),
    ApiRoute(
        _DEPARTMENT,
        get_department,
        "GET",
        summary="One department",
        path_params=_PATH,
        responses=answers(DepartmentView, 403, 404),
    ),
    ApiRoute(
        _DEPARTMENT + "/members/{user_id}",
        add_member,
        "PUT",
        summary="Count a user's model calls against the department (besides their token's departments)",
        path_params={**_PATH, "user_id": str},
        responses=answers(DepartmentView, 400, 403, 404),
    ),
    ApiRoute(
        _DEPARTMENT + "/members/{user_id}",
        remove_member,
        "DELETE",
        summary="Stop counting a user's model calls against the department",
        path_params={**_PATH, "user_id": str},
        responses=answers(DepartmentView, 400, 403, 404),
    ),
    ApiRoute(
        _DEPARTMENT + "/quotas/{quota_type}/{period}",
        set_quota,
        "PUT",
        summary="Set a quota of requests or tokens per day or month (`limit`: null removes it)",
        path_params=_QUOTA_PATH,
        body=QuotaBody,
        responses=answers(DepartmentView, 400, 403, 404, 422),
    ),
]
