"""What every command reads: environment settings, the endpoints file of a running `agentbus up`, logging."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Literal, TextIO

import msgspec

ENDPOINTS_FILE = "endpoints.json"
CREDENTIALS_ENV = "AGENTBUS_NATS_CREDENTIALS"
"""Names the nkey seed file a process connects to NATS with (`bus.credentials`)."""
GATEWAY_KEYS_ENV = "AGENTBUS_GATEWAY_KEYS"
"""Names the gateways' public nkeys (comma-separated) whose signed principals workers believe (`bus.origin`)."""
SERVICE_KEYS_ENV = "AGENTBUS_SERVICE_KEYS"
"""Names the services' public nkeys (`billing=U…,crm=U…`): what one of them signed acts as that service (`bus.origin`)."""
SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A service's name: its seed's file name (`<name>.nk`) and its principal id."""
_USER_KEY = re.compile(r"U[A-Z2-7]{55}")
"""The form of a user nkey's public key (its checksum is the signature check's business, `bus.credentials`)."""

LogFormat = Literal["auto", "console", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "console", "json")


class Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where a running `agentbus up` can be reached (written to `<data-dir>/endpoints.json`)."""

    http_url: str
    nats_url: str
    database_url: str
    nats_credentials: str | None = None
    """The seed file an outside service connects to the embedded NATS with (None: an external NATS)."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Environment settings shared by every command."""

    nats_url: str | None
    database_url: str | None
    nats_credentials: str | None
    """The nkey seed file this process connects to NATS with (`AGENTBUS_NATS_CREDENTIALS`)."""
    gateway_keys: frozenset[str]
    """The public nkeys of the gateways whose users' principals a worker believes (`AGENTBUS_GATEWAY_KEYS`)."""
    service_keys: dict[str, str] = msgspec.field(default_factory=dict)
    """The public nkey of each named service, by name (`AGENTBUS_SERVICE_KEYS`)."""
    subject_prefix: str
    api_key: str | None
    jwt_secret: str | None = None
    """Users' tokens are HS256, signed with this secret (`AGENTBUS_JWT_SECRET`) ..."""
    jwt_public_key_file: str | None = None
    """... or RS256, verified with this PEM public key (`AGENTBUS_JWT_PUBLIC_KEY_FILE`) ..."""
    jwt_jwks_file: str | None = None
    """... or with the key of this JWKS file their `kid` names (`AGENTBUS_JWT_JWKS_FILE`)."""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    offline_delay: float
    ack_wait: float
    answer_timeout: float

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of the environment; exit saying which is wrong when one cannot be read."""
        gateway_keys = frozenset(key.strip() for key in os.environ.get(GATEWAY_KEYS_ENV, "").split(",") if key.strip())
        service_keys = parse_service_keys(os.environ.get(SERVICE_KEYS_ENV, ""))
        if both := gateway_keys & set(service_keys.values()):
            # Which would it be? Believing its principals or not: a choice no one should leave to us.
            raise SystemExit(f"agentbus: {min(both)} is in both {GATEWAY_KEYS_ENV} and {SERVICE_KEYS_ENV}")
        return cls(
            nats_url=os.environ.get("AGENTBUS_NATS_URL") or None,
            database_url=os.environ.get("AGENTBUS_DATABASE_URL") or None,
            nats_credentials=os.environ.get(CREDENTIALS_ENV) or None,
            gateway_keys=gateway_keys,
            service_keys=service_keys,
            subject_prefix=os.environ.get("AGENTBUS_SUBJECT_PREFIX", "agentbus"),
            api_key=os.environ.get("AGENTBUS_API_KEY") or None,
            jwt_secret=os.environ.get("AGENTBUS_JWT_SECRET") or None,
            jwt_public_key_file=os.environ.get("AGENTBUS_JWT_PUBLIC_KEY_FILE") or None,
            jwt_jwks_file=os.environ.get("AGENTBUS_JWT_JWKS_FILE") or None,
            jwt_issuer=os.environ.get("AGENTBUS_JWT_ISSUER") or None,
            jwt_audience=os.environ.get("AGENTBUS_JWT_AUDIENCE") or None,
            offline_delay=float(os.environ.get("AGENTBUS_OFFLINE_DELAY", "0")),
            ack_wait=float(os.environ.get("AGENTBUS_ACK_WAIT", "10")),
            answer_timeout=float(os.environ.get("AGENTBUS_ANSWER_TIMEOUT", "120")),
        )


def parse_service_keys(value: str) -> dict[str, str]:
    """Read `AGENTBUS_SERVICE_KEYS` (`name=key`, comma-separated), or exit saying which entry is wrong.

    A mistake stops the start rather than leaving a service anonymous: its
    commands would count against another quota than the one meant for it.
    """
    keys: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        name, _, key = (side.strip() for side in entry.partition("="))
        if not SERVICE_NAME.fullmatch(name) or not _USER_KEY.fullmatch(key):
            raise SystemExit(f"agentbus: {SERVICE_KEYS_ENV}: {entry!r} is not name=U… (a service name, a user nkey)")
        if name in keys or key in keys.values():
            raise SystemExit(f"agentbus: {SERVICE_KEYS_ENV}: {entry!r} repeats a name or a key")
        keys[name] = key
    return keys


def format_service_keys(keys: dict[str, str]) -> str:
    """`keys` as `AGENTBUS_SERVICE_KEYS` holds them (what `parse_service_keys` reads)."""
    return ",".join(f"{name}={key}" for name, key in keys.items())


def configure_logging(level: str = "info", log_format: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Log to `stream` (stderr) with the context bound at message boundaries (session_id, actor, correlation_id).

    `auto` renders for a person when the stream is a terminal (one aligned,
    coloured line per event, tracebacks in full) and as one JSON object per
    line otherwise, for a log collector; `console` and `json` force either.
    """
    # Imported here, not at the top: structlog costs a tenth of a second, and `agentbus --help` should not pay it.
    import structlog

    stream = stream if stream is not None else sys.stderr
    console = log_format == "console" or (log_format == "auto" and stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    rendering: list[structlog.typing.Processor] = (
        # ConsoleRenderer formats exceptions itself; format_exc_info before it would flatten them.
        [structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False), structlog.dev.ConsoleRenderer(colors=True)]
        if console
        else [
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    )
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
    )


def discover(args: argparse.Namespace, settings: Settings) -> Endpoints | None:
    path = Path(args.data_dir) / ENDPOINTS_FILE
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=Endpoints)
    return None


def require_urls(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    found = discover(args, settings)
    nats_url = settings.nats_url or (found.nats_url if found else None)
    database_url = settings.database_url or (found.database_url if found else None)
    if not nats_url or not database_url:
        raise SystemExit(
            "no services: set AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL, or run `agentbus up` "
            f"(it writes {Path(args.data_dir) / ENDPOINTS_FILE})"
        )
    return nats_url, database_url


def client_credentials(args: argparse.Namespace, settings: Settings) -> str | None:
    """Return the seed file a client command (`publish`, `tail`) connects to NATS with.

    `AGENTBUS_NATS_CREDENTIALS`, else the service credential of the running
    `agentbus up` found through the data dir (its embedded NATS lets no one in without one).
    """
    if settings.nats_credentials or settings.nats_url:
        return settings.nats_credentials
    found = discover(args, settings)
    return found.nats_credentials if found else None
