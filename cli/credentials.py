"""NATS credentials: the one a command connects with, and `agentbus credentials`, which makes a cluster's."""

from __future__ import annotations

import argparse
from pathlib import Path

from bus.credentials import Credential, CredentialError
from bus.permissions import ensure_credentials, write_server_config
from schemas import Subjects

from .settings import (
    CREDENTIALS_ENV,
    GATEWAY_KEYS_ENV,
    SERVICE_KEYS_ENV,
    SERVICE_NAME,
    Settings,
    format_service_keys,
)

SERVER_INCLUDE = "nats-auth.conf"
"""What `agentbus credentials` writes for the nats-servers to include: who may connect, and do what."""
WORKER_ENV = "agentbus.env"
"""What it writes for the workers' environment: the gateways' public keys and the services', by name."""


def load_credential(path: str | None) -> Credential | None:
    """The credential in the seed file `path` (None: none), or exit saying what is wrong with the file."""
    if path is None:
        return None
    try:
        return Credential(Path(path))
    except CredentialError as exc:
        raise SystemExit(f"agentbus: {exc}") from None


def cmd_credentials(args: argparse.Namespace, settings: Settings) -> int:
    """Write a cluster's NATS credentials: a seed per role and service, the servers' include, the workers' keys."""

    services = tuple(args.service or ["service"])
    for name in services:
        # A name becomes a file name: no path may escape the directory, nor a service take a role's seed.
        if not SERVICE_NAME.fullmatch(name) or name in ("worker", "gateway"):
            raise SystemExit(
                f"agentbus: invalid service name {name!r}: use 1-64 of A-Z a-z 0-9 _ -, not worker or gateway"
            )
    directory = Path(args.directory)
    credentials = ensure_credentials(directory, services)
    write_server_config(directory / SERVER_INCLUDE, credentials, Subjects(settings.subject_prefix))
    gateway_key = credentials.of("gateway").public_key
    named = {name: Credential(path).public_key for name, path in credentials.services.items()}
    env = f"{GATEWAY_KEYS_ENV}={gateway_key}\n{SERVICE_KEYS_ENV}={format_service_keys(named)}\n"
    (directory / WORKER_ENV).write_text(env)
    for path in (credentials.worker, credentials.gateway):
        print(f"{path}  (seed: hand it to that process only, as {CREDENTIALS_ENV})")
    for name, path in credentials.services.items():
        print(f"{path}  (seed of the service {name}, key {named[name]}: hand it to that service only)")
    print(f"{directory / SERVER_INCLUDE}  (include it in every nats-server's config)")
    print(f"{directory / WORKER_ENV}  (the workers' environment: {GATEWAY_KEYS_ENV}, {SERVICE_KEYS_ENV})")
    return 0
