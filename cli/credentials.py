"""NATS credentials: the one a command connects with, and `agentbus credentials`, which makes a cluster's."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bus.credentials import Credential, CredentialError
from bus.permissions import ensure_credentials, write_server_config
from schemas import Subjects

from .settings import CREDENTIALS_ENV, GATEWAY_KEYS_ENV, Settings

SERVER_INCLUDE = "nats-auth.conf"
"""What `agentbus credentials` writes for the nats-servers to include: who may connect, and do what."""
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
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

    services = tuple(args.service or ["service"])
    for name in services:
        # A name becomes a file name: no path may escape the directory, nor a service take a role's seed.
        if not _SERVICE_NAME.fullmatch(name) or name in ("worker", "gateway"):
            raise SystemExit(
                f"agentbus: invalid service name {name!r}: use 1-64 of A-Z a-z 0-9 _ -, not worker or gateway"
            )
    directory = Path(args.directory)
    credentials = ensure_credentials(directory, services)
    write_server_config(directory / SERVER_INCLUDE, credentials, Subjects(settings.subject_prefix))
    keys = f"{GATEWAY_KEYS_ENV}={credentials.of('gateway').public_key}\n"
    (directory / WORKER_ENV).write_text(keys)
    for path in (credentials.worker, credentials.gateway, *credentials.services.values()):
        print(f"{path}  (seed: hand it to that process only, as {CREDENTIALS_ENV})")
    print(f"{directory / SERVER_INCLUDE}  (include it in every nats-server's config)")
    print(f"{directory / WORKER_ENV}  (the workers' environment: {keys.strip()})")
    return 0
