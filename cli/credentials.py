"""The NATS credential a command connects with: the seed file `AGENTBUS_NATS_CREDENTIALS` (or `up`'s) names."""

from __future__ import annotations

from pathlib import Path

from bus.credentials import Credential, CredentialError


def load_credential(path: str | None) -> Credential | None:
    """The credential in the seed file `path` (None: none), or exit saying what is wrong with the file."""
    if path is None:
        return None
    try:
        return Credential(Path(path))
    except CredentialError as exc:
        raise SystemExit(f"agentbus: {exc}") from None
