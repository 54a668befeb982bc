"""A client's NATS credential: an nkey seed file, the public key it proves, and the reply inbox it owns.

nkeys rather than passwords: the server's configuration holds only public
keys, and the seed never crosses the wire (the client signs the server's
nonce). Every credential's replies come under an inbox prefix named after its
public key (`_INBOX.<public key>`), and the server lets only that credential
subscribe there, so no client can read another's replies.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

from .errors import BusError

INBOX_ROOT = "_INBOX"


class CredentialError(BusError):
    """A credential file is missing, unreadable or holds no user nkey seed."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"NATS credential {path}: {reason}")
        self.path = path


class Credential:
    """The user nkey whose seed is in `path` (a file of one line, `SU…`, readable by its owner only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            seed = path.read_bytes().strip()
            self._keys = nkeys.from_seed(bytearray(seed))
            self.public_key: str = self._keys.public_key.decode()
        except OSError as exc:
            raise CredentialError(path, exc.strerror or str(exc)) from None
        except nkeys.NkeysError as exc:
            raise CredentialError(path, f"not an nkey seed ({type(exc).__name__})") from None
        if not self.public_key.startswith("U"):
            raise CredentialError(path, "not a user nkey (its public key must start with U)")

    @property
    def inbox_prefix(self) -> str:
        """Where this credential's replies arrive: the only inbox the server lets it read."""
        return inbox_prefix(self.public_key)

    def connect_options(self) -> dict[str, Any]:
        """The nats-py `connect` arguments that authenticate with this credential and use its inbox."""
        return {"nkeys_seed": str(self.path), "inbox_prefix": self.inbox_prefix}

    def sign(self, data: bytes) -> bytes:
        """Sign `data` with the seed (ed25519), as the server's nonce is signed."""
        return bytes(self._keys.sign(data))


def inbox_prefix(public_key: str) -> str:
    """The reply-inbox prefix of the credential with `public_key`."""
    return f"{INBOX_ROOT}.{public_key}"


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """Whether `signature` is the signature of `data` by the seed of the user nkey `public_key`."""
    raw = _raw_user_key(public_key)
    if raw is None:
        return False
    try:
        nacl.signing.VerifyKey(raw).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def _raw_user_key(public_key: str) -> bytes | None:
    """The 32 bytes of a user nkey's public key (`U…`: base32 of prefix byte, key, CRC-16), or None if it is not one.

    nkeys decodes seeds but not public keys: this reads the form its `KeyPair.public_key` writes.
    """
    try:
        decoded = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    except (binascii.Error, ValueError):
        return None
    body, checksum = decoded[:-2], decoded[-2:]
    if len(body) != 33 or body[0] != nkeys.PREFIX_BYTE_USER or nkeys.crc16_checksum(body) != checksum:
        return None
    return body[1:]


def new_seed_file(path: Path) -> Credential:
    """Write a fresh user nkey seed to `path`, readable and writable by its owner only (0600)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(seed + b"\n")
    return Credential(path)
