"""NATS credentials: the one a command connects with, and `agentbus credentials`, which makes a cluster's."""

from __future__ import annotations

import argparse
from pathlib import Path

from bus.credentials import Credential, CredentialError
from bus.permissions import ensure_credentials, write_server_config
from schemas import Subjects

from .settings import CREDENTIALS_ENV, GATEWAY_KEYS_ENV, Settings

SERVER_INCLUDE = "nats-auth.conf"
"""What `agentbus credentials` writes for the nats-servers to include: who may connect, and do what."""
WORKER_ENV = "agentbus.env"
"""What it writes for the workers' environment: the gateways' public keys."""


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

    directory = Path(args.directory)
    credentials = ensure_credentials(directory, tuple(args.service or ["service"]))
    write_server_config(directory / SERVER_INCLUDE, credentials, Subjects(settings.subject_prefix))
    keys = f"{GATEWAY_KEYS_ENV}={credentials.of('gateway').public_key}\n"
    (directory / WORKER_ENV).write_text(keys)
    for path in (credentials.worker, credentials.gateway, *credentials.services.values()):
        print(f"{path}  (seed: hand it to that process only, as {CREDENTIALS_ENV})")
    print(f"{directory / SERVER_INCLUDE}  (include it in every nats-server's config)")
    print(f"{directory / WORKER_ENV}  (the workers' environment: {keys.strip()})")
    return 0
