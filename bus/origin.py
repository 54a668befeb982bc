"""Who a command acts for: the user a gateway vouches for with its signature, else the service that sent it.

JetStream does not say who published a message, and a command's `principal`
is only its sender's claim. A gateway verified the user's token, so it signs
each command and create it publishes with its credential's nkey (ed25519, over
the subject and the exact bytes: headers `Agentbus-Gateway-Key` and
`Agentbus-Gateway-Signature`). A worker honours the principal only when the
signature verifies with a key it trusts (`AGENTBUS_GATEWAY_KEYS`); anything
else acts as the service that sent it (`SERVICE`), so a service can never
claim to be a user or an admin.

A signature rather than a subject of the gateways' own: it holds on any NATS,
with accounts or without (an external one without auth too), and the command
stream keeps its one subject. On the embedded server, where only workers and
gateways may read command subjects, no one else ever sees a signed command; a
signed one replayed elsewhere is bound to its session by the subject, and to its
idempotency key by the bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TypeVar

import msgspec

from schemas import CreateSession, Principal, SendMessage

from .credentials import Credential, verify

KEY_HEADER = "Agentbus-Gateway-Key"
SIGNATURE_HEADER = "Agentbus-Gateway-Signature"

SERVICE = Principal(id="service", role="service")
"""Whom a command acts for when no trusted gateway signed it: the outside service that published it."""

C = TypeVar("C", bound=msgspec.Struct)


class Origin:
    """How one connection signs what it publishes for users (`signer`), and whose signatures it believes (`trusted`)."""

    def __init__(self, *, signer: Credential | None = None, trusted: frozenset[str] = frozenset()) -> None:
        self.signer = signer
        self.trusted = trusted

    def headers(self, subject: str, data: bytes) -> dict[str, str]:
        """The headers that vouch for `data` on `subject` (none without a signer)."""
        if self.signer is None:
            return {}
        signature = self.signer.sign(_signed(subject, data))
        return {KEY_HEADER: self.signer.public_key, SIGNATURE_HEADER: base64.b64encode(signature).decode()}

    def vouched(self, subject: str, data: bytes, headers: Mapping[str, str] | None) -> bool:
        """Whether a trusted gateway signed `data` for `subject`."""
        if not headers or headers.get(KEY_HEADER) not in self.trusted:
            return False
        try:
            signature = base64.b64decode(headers.get(SIGNATURE_HEADER, ""), validate=True)
        except (binascii.Error, ValueError):
            return False
        return verify(headers[KEY_HEADER], _signed(subject, data), signature)

    def acting_for(self, command: C, subject: str, data: bytes, headers: Mapping[str, str] | None) -> C:
        """`command` as it may act: its principal if a trusted gateway vouched for it, else the service's."""
        match command:
            case CreateSession() | SendMessage() if not self.vouched(subject, data, headers):
                return msgspec.structs.replace(command, principal=SERVICE)
        return command


def _signed(subject: str, data: bytes) -> bytes:
    """What a gateway signs: the subject a command was published on (before any transform), and its bytes."""
    return subject.encode() + b"\n" + data
