"""Who a command acts for: the identity quotas are counted against and sessions belong to."""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["admin", "user", "service"]
"""`admin` and `user` come from a verified JWT; `service` is an outside service acting as itself."""


class Principal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A verified identity: a user (from a JWT the gateway checked) or a service (from its bus credential).

    Workers honour a command's principal only when it arrived through a
    gateway's credential; any other sender acts as itself (a `service`).
    """

    id: str
    role: Role = "user"
    departments: tuple[str, ...] = ()
