"""Who may do what on agentbus's NATS: one nkey per role, the permissions of each, the server config that grants them.

- a **worker** runs the actors: it may publish and subscribe anything of the
  prefix, publish replies to anyone's inbox and use the JetStream API;
- a **gateway** publishes session commands and creates (signed for its users,
  `bus.origin`), asks for the agents, follows session feeds, keeps uploads in
  its bucket and reads the command stream's backlog (`/readyz`, `/metrics`):
  of the JetStream API only those calls on those two streams, so it can neither
  read commands nor change or delete a stream;
- an outside **service** may publish session commands and creates, ask for a
  session's events and follow session feeds, and nothing more.

A JetStream publish is a request whose acknowledgement the stream sends to the
publisher's reply inbox: publishing a command needs no `$JS.API` permission.
Each credential subscribes only to its own inbox (`bus.credentials`), so no one
reads another's replies. A client without a credential is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from schemas import Subjects

from .credentials import Credential, inbox_prefix, new_seed_file
from .objects import uploads_bucket_name

ROLES = ("worker", "gateway", "service")


class Allowed(msgspec.Struct, frozen=True):
    allow: list[str]


class Permissions(msgspec.Struct, frozen=True):
    publish: Allowed
    subscribe: Allowed


class User(msgspec.Struct, frozen=True):
    nkey: str
    permissions: Permissions


class RoleCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """The seed files of one installation's roles (`<dir>/<role>.nk`)."""

    worker: Path
    gateway: Path
    service: Path

    def of(self, role: str) -> Credential:
        return Credential(getattr(self, role))


def ensure_credentials(directory: Path) -> RoleCredentials:
    """The seed file of each role under `directory`, made (0600) for any role that has none yet."""
    paths = {role: directory / f"{role}.nk" for role in ROLES}
    for path in paths.values():
        if not path.exists():
            new_seed_file(path)
    return RoleCredentials(**paths)


def permissions(role: str, public_key: str, subjects: Subjects) -> Permissions:
    """What the credential `public_key` of `role` may publish and subscribe to under `subjects.prefix`."""
    prefix = subjects.prefix
    own_inbox = f"{inbox_prefix(public_key)}.>"
    follow = [f"{prefix}.session.*.evt", own_inbox]
    if role == "worker":
        return Permissions(publish=Allowed([">"]), subscribe=Allowed([f"{prefix}.>", own_inbox]))
    if role == "gateway":
        uploads = f"OBJ_{uploads_bucket_name(subjects)}"
        api = "$JS.API"
        return Permissions(
            publish=Allowed(
                [
                    subjects.all_session_cmds,
                    subjects.sessions_create,
                    subjects.agents_list,
                    f"$O.{uploads_bucket_name(subjects)}.>",
                    *(f"{api}.STREAM.{call}.{uploads}" for call in ("INFO", "CREATE", "MSG.GET", "PURGE")),
                    f"{api}.DIRECT.GET.{uploads}.>",
                    f"{api}.CONSUMER.LIST.{subjects.cmd_stream}",
                ]
            ),
            subscribe=Allowed(follow),
        )
    if role == "service":
        return Permissions(
            publish=Allowed([subjects.all_session_cmds, subjects.sessions_create, subjects.all_session_events]),
            subscribe=Allowed(follow),
        )
    raise ValueError(f"unknown role {role!r}")


def write_server_config(path: Path, credentials: RoleCredentials, subjects: Subjects) -> None:
    """Write the nats-server config (JSON, which its parser reads) authorizing each role's nkey, and no one else.

    It holds public keys only; it is still readable by its owner only, as it
    maps out who may do what.
    """
    users = []
    for role in ROLES:
        key = credentials.of(role).public_key
        users.append(User(nkey=key, permissions=permissions(role, key, subjects)))
    text = msgspec.json.format(msgspec.json.encode({"authorization": {"users": users}}))
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(text)
    partial.replace(path)
