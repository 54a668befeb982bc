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
from typing import Literal

import msgspec

from schemas import Subjects

from .credentials import Credential, inbox_prefix, new_seed_file
from .objects import uploads_bucket_name

NatsRole = Literal["worker", "gateway", "service"]


class Allowed(msgspec.Struct, frozen=True):
    allow: list[str]


class Permissions(msgspec.Struct, frozen=True):
    publish: Allowed
    subscribe: Allowed


class User(msgspec.Struct, frozen=True):
    nkey: str
    permissions: Permissions


class RoleCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """The seed files of one installation's roles (`<dir>/<role>.nk`); `services` may hold several, one per service."""

    worker: Path
    gateway: Path
    services: dict[str, Path]

    @property
    def service(self) -> Path:
        """The first service's seed: the one `agentbus up` hands to outside clients."""
        return next(iter(self.services.values()))

    def of(self, role: NatsRole) -> Credential:
        """The credential of `role` (of a service: the first's)."""
        return Credential({"worker": self.worker, "gateway": self.gateway, "service": self.service}[role])

    def grants(self) -> list[tuple[NatsRole, str]]:
        """(role, public key) of every credential."""
        grants: list[tuple[NatsRole, str]] = [("worker", Credential(self.worker).public_key)]
        grants.append(("gateway", Credential(self.gateway).public_key))
        return grants + [("service", Credential(path).public_key) for path in self.services.values()]


def ensure_credentials(directory: Path, services: tuple[str, ...] = ("service",)) -> RoleCredentials:
    """The seed file of each role under `directory` (one per named service), made (0600) for any that has none yet."""
    worker, gateway = directory / "worker.nk", directory / "gateway.nk"
    named = {name: directory / f"{name}.nk" for name in services}
    for path in (worker, gateway, *named.values()):
        if not path.exists():
            new_seed_file(path)
    return RoleCredentials(worker=worker, gateway=gateway, services=named)


def permissions(role: NatsRole, public_key: str, subjects: Subjects) -> Permissions:
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
                    f"{api}.DIRECT.GET.{uploads}",
                    f"{api}.DIRECT.GET.{uploads}.>",
                    f"{api}.CONSUMER.LIST.{subjects.cmd_stream}",
                ]
            ),
            subscribe=Allowed(follow),
        )
    return Permissions(
        publish=Allowed([subjects.all_session_cmds, subjects.sessions_create, subjects.all_session_events]),
        subscribe=Allowed(follow),
    )


def authorization(credentials: RoleCredentials, subjects: Subjects) -> bytes:
    """The nats-server `authorization` block (its JSON form, which the server's parser reads) for `credentials`.

    Only these nkeys get in, each with its role's permissions: a client
    without one is refused. It holds public keys only.
    """
    users = [User(nkey=key, permissions=permissions(role, key, subjects)) for role, key in credentials.grants()]
    return b"authorization: " + msgspec.json.format(msgspec.json.encode({"users": users})) + b"\n"


def write_server_config(path: Path, credentials: RoleCredentials, subjects: Subjects) -> None:
    """Write `authorization(...)` to `path`, readable by its owner only: it maps out who may do what."""
    partial = path.with_suffix(".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(authorization(credentials, subjects))
    partial.replace(path)
