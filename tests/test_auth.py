"""Users' tokens: verified against an HS256 secret, an RS256 public key or a JWKS; the API key acts as a service."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request

from bus.origin import SERVICE
from gateway.auth import InvalidToken, JwtKeys, Refused, identify, may_see
from schemas import Principal
from tests.system import AGENTBUS

SECRET = "a-secret-long-enough-for-hs256-and-hs512-" + "x" * 30


def _claims(**extra: object) -> dict[str, object]:
    return {"sub": "ada", "role": "user", "departments": ["research"], "exp": int(time.time()) + 60, **extra}


def _request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return Request({"type": "http", "headers": raw, "query_string": query.encode(), "path": "/"})


def _rsa() -> tuple[str, str, dict[str, object]]:
    """A new RSA key pair: the private key's PEM, the public key's PEM and its JWK."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, pem, jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)


def test_an_hs256_token_gives_its_user_role_and_departments() -> None:
    keys = JwtKeys(secret=SECRET)
    token = jwt.encode(_claims(role="admin", departments=["a", "b"]), SECRET, algorithm="HS256")
    assert keys.verify(token) == Principal(id="ada", role="admin", departments=("a", "b"))


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), SECRET + "-not", algorithm="HS256"),
        jwt.encode(_claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256"),
        jwt.encode({"sub": "ada"}, SECRET, algorithm="HS256"),  # no expiry
        jwt.encode(_claims(role="root"), SECRET, algorithm="HS256"),
        jwt.encode(_claims(), SECRET, algorithm="HS512"),  # not the configured algorithm
        "not.a.token",
    ],
    ids=["wrong secret", "expired", "no exp", "unknown role", "other algorithm", "garbage"],
)
def test_a_token_that_does_not_verify_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        JwtKeys(secret=SECRET).verify(token)


def test_an_rs256_token_verifies_with_the_public_key_and_with_a_jwks(tmp_path: Path) -> None:
    private, public, jwk = _rsa()
    (tmp_path / "public.pem").write_text(public)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "k1"})
    by_key = JwtKeys.load(public_key_file=str(tmp_path / "public.pem"))
    by_jwks = JwtKeys.load(jwks_file=str(tmp_path / "jwks.json"))
    assert by_key is not None and by_jwks is not None
    assert by_key.verify(token).id == by_jwks.verify(token).id == "ada"
    # A gateway that verifies RS256 takes no HS256 token, whatever it was signed with (no algorithm confusion).
    with pytest.raises(InvalidToken):
        by_key.verify(jwt.encode(_claims(), SECRET, algorithm="HS256"))


def test_one_key_is_configured_at_most() -> None:
    assert JwtKeys.load() is None
    with pytest.raises(ValueError, match="one JWT key"):
        JwtKeys.load(secret=SECRET, jwks_file="/nonexistent")
    with pytest.raises(ValueError, match="cannot read"):
        JwtKeys.load(public_key_file="/nonexistent/key.pem")


def test_a_request_is_the_api_keys_service_a_tokens_user_or_refused() -> None:
    keys = JwtKeys(secret=SECRET)
    token = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert identify(_request({"X-API-Key": "k"}), "k", keys) == SERVICE
    assert identify(_request({"Authorization": f"Bearer {token}"}), "k", keys) == Principal(
        id="ada", departments=("research",)
    )
    assert identify(_request(query=f"token={token}"), None, keys) == Principal(id="ada", departments=("research",))
    assert isinstance(identify(_request(), "k", keys), Refused)
    assert isinstance(identify(_request({"Authorization": "Bearer x.y.z"}), None, keys), Refused)
    assert identify(_request(), None, None) is None  # nothing configured: open, as before users existed


def test_a_user_sees_only_their_own_sessions_admins_and_services_all() -> None:
    ada, bob = Principal(id="ada"), Principal(id="bob")
    assert may_see(ada, "ada") and not may_see(bob, "ada") and not may_see(ada, None)
    assert may_see(Principal(id="root", role="admin"), "ada")
    assert may_see(SERVICE, "ada")
    assert may_see(None, "ada")


def test_token_issue_prints_a_token_the_gateway_verifies() -> None:
    issued = subprocess.run(
        [AGENTBUS, "token", "issue", "--user", "ada", "--role", "admin", "--departments", "d1", "d2"],
        env={"AGENTBUS_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert JwtKeys(secret=SECRET).verify(issued.stdout.strip()) == Principal(
        id="ada", role="admin", departments=("d1", "d2")
    )
