"""Who a command acts for: the user a gateway vouches for with its signature, a named service, or the anonymous one.

JetStream does not say who published a message, and a command's `principal`
is only its sender's claim. So every agentbus connection with a credential
signs each command and request it publishes with its nkey (ed25519, over the
subject and the exact bytes: headers `Agentbus-Signer-Key` and
`Agentbus-Signature`), and a worker reads the signer off the signature:

- a gateway's key (`AGENTBUS_GATEWAY_KEYS`): the gateway verified its user's
  token, so the principal the command carries is honoured;
- a named service's key (`AGENTBUS_SERVICE_KEYS`, `billing=U…`): the command
  acts as that service, `Principal(id="billing", role="service")`, whatever
  principal it claims, so it counts against that service's own departments;
- no signature, a bad one or an unknown key: the anonymous service `SERVICE`
  (a client that does not sign, or a key no one named to the workers).

So a service can never claim to be a user or an admin, nor another service.

A signature rather than a subject per sender: it holds on any NATS, with
accounts or without (an external one without auth too), and the command
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
from .errors import BusError

KEY_HEADER = "Agentbus-Signer-Key"
SIGNATURE_HEADER = "Agentbus-Signature"

SERVICE = Principal(id="service", role="service")
"""Whom a command acts for when no known key signed it: the anonymous outside service."""

C = TypeVar("C", bound=msgspec.Struct)


class Origin:
    """How one connection signs what it publishes (`signer`), and whose signatures it believes.

    `trusted` are the gateways' public keys (their principals are honoured);
    `services` names the services' public keys (`{"billing": "U…"}`: each acts as itself).
    """

    def __init__(
        self,
        *,
        signer: Credential | None = None,
        trusted: frozenset[str] = frozenset(),
        services: Mapping[str, str] | None = None,
    ) -> None:
        self.signer = signer
        self.trusted = trusted
        self._service_of = {key: name for name, key in (services or {}).items()}
        if len(self._service_of) != len(services or {}):
            raise BusError("two services share one public key: a worker could not tell them apart")
        if both := trusted & self._service_of.keys():
            raise BusError(f"a key is both a gateway's and a service's: {sorted(both)[0]}")

    def headers(self, subject: str, data: bytes) -> dict[str, str]:
        """The headers that prove who published `data` on `subject` (none without a signer)."""
        if self.signer is None:
            return {}
        signature = self.signer.sign(_signed(subject, data))
        return {KEY_HEADER: self.signer.public_key, SIGNATURE_HEADER: base64.b64encode(signature).decode()}

    def signer_of(self, subject: str, data: bytes, headers: Mapping[str, str] | None) -> str | None:
        """The known key (a gateway's or a service's) that signed `data` for `subject`, if one did."""
        key = (headers or {}).get(KEY_HEADER)
        if key is None or (key not in self.trusted and key not in self._service_of):
            return None  # any key can sign: one no one named proves nothing, so it is not even checked
        try:
            signature = base64.b64decode((headers or {}).get(SIGNATURE_HEADER, ""), validate=True)
        except (binascii.Error, ValueError):
            return None
        return key if verify(key, _signed(subject, data), signature) else None

    def acting_for(self, command: C, subject: str, data: bytes, headers: Mapping[str, str] | None) -> C:
        """`command` as it may act: its principal if a gateway signed it, else the signing service's, else `SERVICE`."""
        match command:
            case CreateSession() | SendMessage():
                key = self.signer_of(subject, data, headers)
                if key in self.trusted:
                    return command
                name = self._service_of.get(key) if key is not None else None
                acting = SERVICE if name is None else Principal(id=name, role="service")
                return msgspec.structs.replace(command, principal=acting)
        return command


def _signed(subject: str, data: bytes) -> bytes:
    """What a sender signs: the subject a command was published on (before any transform), and its bytes."""
    return subject.encode() + b"\n" + data
