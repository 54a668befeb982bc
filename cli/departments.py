"""`agentbus departments …`: an admin's departments, members and quotas, recorded in the log as the REST API does.

The commands write the log directly (through `projections.departments`), so
they work on a stopped system too; a running one's projector applies them,
and from then on its model calls reserve against the new quotas.
"""

from __future__ import annotations

import argparse
import asyncio

import msgspec

from projections import EventLog, ReadModels
from projections.departments import DepartmentRefused, Departments
from schemas.departments import AddMember, CreateDepartment, DepartmentCommand, RemoveMember, SetQuota

from .database import database, database_url
from .settings import Settings


def _command(args: argparse.Namespace) -> DepartmentCommand | None:
    match args.action:
        case "create":
            return CreateDepartment(department_id=args.department, name=args.name)
        case "add-member":
            return AddMember(department_id=args.department, user_id=args.user)
        case "remove-member":
            return RemoveMember(department_id=args.department, user_id=args.user)
        case "quota":
            if args.limit != "none" and not args.limit.isdigit():
                raise SystemExit(f"agentbus: a limit is a whole number or none, not {args.limit!r}")
            limit = None if args.limit == "none" else int(args.limit)
            return SetQuota(department_id=args.department, quota_type=args.quota_type, period=args.period, limit=limit)
    return None  # list


def cmd_departments(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one department command and print the department as its stream says (or list them all)."""

    async def main(url: str) -> int:
        async with database(url, settings.subject_prefix) as engine:
            command = _command(args)
            if command is None:
                print(msgspec.json.encode(await ReadModels(engine).departments.list_departments()).decode())
                return 0
            event_log = EventLog(engine)
            try:
                outcome = await Departments(event_log).handle(command)
            finally:
                await event_log.close()
        if isinstance(outcome, DepartmentRefused):
            print(f"agentbus: {outcome.message}")
            return 2
        print(msgspec.json.encode(outcome).decode())
        return 0

    with database_url(args, settings) as url:
        return asyncio.run(main(url))
