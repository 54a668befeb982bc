"""`agentbus token issue`: a user's JWT for trying agentbus out (an identity provider issues them in production)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jwt

from .settings import Settings


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    """Print a token for `--user` with `--role` and `--departments`, signed as the gateway verifies it.

    HS256 with AGENTBUS_JWT_SECRET (or `--secret`), or RS256 with `--private-key`
    (the pair of AGENTBUS_JWT_PUBLIC_KEY_FILE, or of a JWKS key named by `--kid`).
    """
    claims: dict[str, object] = {
        "sub": args.user,
        "role": args.role,
        "departments": list(args.departments),
        "iat": int(time.time()),
        "exp": int(time.time()) + args.ttl,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if args.private_key:
        headers = {"kid": args.kid} if args.kid else None
        token = jwt.encode(claims, Path(args.private_key).read_text(), algorithm="RS256", headers=headers)
    else:
        secret = args.secret or settings.jwt_secret
        if not secret:
            raise SystemExit(
                "agentbus: no key to sign with: set AGENTBUS_JWT_SECRET, or give --secret or --private-key"
            )
        token = jwt.encode(claims, secret, algorithm="HS256")
    print(token)
    return 0
