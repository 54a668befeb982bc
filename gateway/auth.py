"""Who a request comes from: a user's JWT, the service API key, or nobody when no credential is configured.

A JWT is verified with PyJWT against one configured key: an HS256 secret, an
RS256 public key (PEM), or a JWKS file (its key chosen by the token's `kid`),
so an organisation's identity provider can issue them. Its claims give the
user (`sub`), the role (`admin` or `user`) and the departments. The API key
stays a service credential: a request that presents it acts as the service
(`bus.origin.SERVICE`, as a command on the bus that no known key signed does). With neither configured everything is open, as before users existed.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any, Literal

import jwt
import msgspec
from starlette.requests import HTTPConnection

from bus.origin import SERVICE
from schemas import Principal


class Claims(msgspec.Struct, frozen=True, kw_only=True):
    """The claims agentbus reads from a verified token (others are ignored)."""

    sub: str
    role: Literal["admin", "user"] = "user"
    departments: tuple[str, ...] = ()


class JwtKeys:
    """The key tokens are verified with: exactly one of an HS256 `secret`, an RS256 `public_key` (PEM) or a `jwks`.

    Keys are parsed once, here, not for every request.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: dict[str, Any] | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self.issuer = issuer
        """When set, a token must name this issuer (`iss`)."""
        self.audience = audience
        """When set, a token must name this audience (`aud`)."""
        self._secret = secret
        self._public_key = (
            jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(public_key)
            if public_key
            else None
        )
        self._jwks = jwt.PyJWKSet.from_dict(jwks).keys if jwks else None

    @classmethod
    def load(
        cls,
        *,
        secret: str | None = None,
        public_key_file: str | None = None,
        jwks_file: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> JwtKeys | None:
        """The configured key (files read now, so a wrong path stops the start), or None when none is configured."""
        given = [
            name for name, value in (("secret", secret), ("public key", public_key_file), ("JWKS", jwks_file)) if value
        ]
        if not given:
            return None
        if len(given) > 1:
            raise ValueError(f"configure one JWT key, not {' and '.join(given)}")
        try:
            public_key = Path(public_key_file).read_text() if public_key_file else None
            jwks = json.loads(Path(jwks_file).read_text()) if jwks_file else None
            return cls(secret=secret, public_key=public_key, jwks=jwks, issuer=issuer, audience=audience)
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise ValueError(f"cannot read the JWT key: {exc}") from None

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; `InvalidToken` for anything else (bad signature, expired, wrong claims)."""
        try:
            key, algorithm = self._key(token)
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
            claims = msgspec.convert(payload, Claims)
        except (jwt.PyJWTError, msgspec.ValidationError) as exc:
            raise InvalidToken(str(exc)) from None
        if not claims.sub:
            raise InvalidToken("the token names no user (sub)")
        return Principal(id=claims.sub, role=claims.role, departments=claims.departments)

    def _key(self, token: str) -> tuple[Any, str]:
        """The key to verify `token` with and the one algorithm it must be signed with."""
        if self._secret:
            return self._secret, "HS256"
        if self._public_key is not None:
            return self._public_key, "RS256"
        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for found in self._jwks:
            if kid is None or found.key_id == kid:
                return found, "RS256"
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")


class InvalidToken(Exception):
    """A presented JWT did not verify."""


Caller = Principal | None
"""Who a request acts for; None when no credential is configured (everything open, as before)."""


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The credential presented is missing or wrong."""

    message: str


def identify(conn: HTTPConnection, api_key: str | None, keys: JwtKeys | None) -> Caller | Refused:
    """Who `conn` comes from: the API key's service, a token's user, None when nothing is configured."""
    if not api_key and keys is None:
        return None
    for given in _presented(conn):
        if api_key and hmac.compare_digest(given.encode(), api_key.encode()):
            return SERVICE
        if keys is not None and given.count(".") == 2:
            try:
                return keys.verify(given)
            except InvalidToken as exc:
                return Refused(message=f"invalid token: {exc}")
    return Refused(message="invalid or missing credentials")


def _presented(conn: HTTPConnection) -> list[str]:
    """What a client presented: `X-API-Key`, `Authorization: Bearer`, `?token=` (the seed's socket), `?api_key=`."""
    found = [conn.headers.get("x-api-key", "")]
    bearer = conn.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        found.append(bearer[7:].strip())
    found += [conn.query_params.get("token", ""), conn.query_params.get("api_key", "")]
    return [value for value in found if value]


def sees_all(caller: Caller) -> bool:
    """Whether `caller` may read and write every session and manage departments: an admin, the service, or
    anyone when no credential is configured."""
    return caller is None or caller.role in ("admin", "service")


def may_see(caller: Caller, owner: str | None) -> bool:
    """Whether `caller` may read and write a session owned by `owner`: a user only their own."""
    return sees_all(caller) or (caller is not None and owner == caller.id)


def caller_of(conn: HTTPConnection) -> Caller:
    """The caller the auth middleware found for this request (None when nothing is configured)."""
    caller: Caller = conn.scope.get("state", {}).get("caller")
    return caller
