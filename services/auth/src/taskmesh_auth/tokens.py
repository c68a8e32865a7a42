"""Tokens: signed access tokens (JWT, EdDSA), the published keys (JWKS), opaque tokens.

Access tokens follow RFC 9068 (`typ: at+jwt`) and RFC 8725: one algorithm (EdDSA over
Ed25519), a `kid` naming the key (its RFC 7638 thumbprint), and every claim a verifier needs.
Refresh and reset tokens are opaque random strings of which only a SHA-256 hash is stored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from taskmesh_auth.domain import Role
from taskmesh_auth.settings import AuthSettings

log = structlog.get_logger(__name__)

ALGORITHM: Final = "EdDSA"
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "role", "sid", "iat", "exp", "jti")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


class UnusableKey(ValueError):
    """A configured key cannot be used: not PEM, not Ed25519, or unreadable."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class PublicJwk:
    """One Ed25519 public key as a JSON Web Key (RFC 8037)."""

    kid: str
    x: str
    kty: str = "OKP"
    crv: str = "Ed25519"
    alg: str = ALGORITHM
    use: str = "sig"


def jwk_thumbprint(x: str) -> str:
    """The RFC 7638 thumbprint of an OKP Ed25519 key: SHA-256 of its required members."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: Ed25519PublicKey) -> PublicJwk:
    """The JWK of a public key, its `kid` being its thumbprint."""
    x = _b64url(_raw_public_bytes(key))
    return PublicJwk(kid=jwk_thumbprint(x), x=x)


class KeyStore:
    """The signing key and every public key still published, each by its `kid`."""

    def __init__(
        self, signing_key: Ed25519PrivateKey, previous: Sequence[Ed25519PublicKey] = ()
    ) -> None:
        self.signing_key = signing_key
        self.signing_jwk = public_jwk(signing_key.public_key())
        self._public: dict[str, Ed25519PublicKey] = {self.signing_jwk.kid: signing_key.public_key()}
        self._jwks = [self.signing_jwk]
        for key in previous:
            jwk = public_jwk(key)
            if jwk.kid not in self._public:
                self._public[jwk.kid] = key
                self._jwks.append(jwk)

    @property
    def signing_kid(self) -> str:
        """The `kid` of the key that signs new tokens."""
        return self.signing_jwk.kid

    def jwks(self) -> list[PublicJwk]:
        """The published keys: the signing key first, then the retired ones."""
        return list(self._jwks)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        """The published public key called `kid`, if any."""
        return self._public.get(kid)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """Every published public key by `kid` (the auth service's own JWKS provider)."""
        return dict(self._public)


def load_private_key(pem: str) -> Ed25519PrivateKey:
    """Parse a PEM Ed25519 private key (PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise UnusableKey(f"not a PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UnusableKey("the signing key must be an Ed25519 key")
    return key


def load_public_keys(pems: str) -> list[Ed25519PublicKey]:
    """Parse every PEM block (public keys, Ed25519) in `pems`."""
    keys: list[Ed25519PublicKey] = []
    for block in _PEM_BLOCK.findall(pems):
        try:
            key = serialization.load_pem_public_key(block.encode())
        except (ValueError, TypeError) as error:
            raise UnusableKey(f"not a PEM public key: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UnusableKey("previous public keys must be Ed25519 keys")
        keys.append(key)
    if pems.strip() and not keys:
        raise UnusableKey("JWT_PREVIOUS_PUBLIC_KEYS holds no PEM block")
    return keys


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a public key (for JWT_PREVIOUS_PUBLIC_KEYS)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_or_create_dev_key(path: Path) -> Ed25519PrivateKey:
    """The development signing key at `path`, generated (mode 0600) the first time."""
    if path.exists():
        return load_private_key(path.read_text(encoding="ascii"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp creates it with mode 0600
            file.write(private_key_pem(key))
        try:
            # A hard link appears whole or not at all and never replaces a key another
            # process has just written: the first writer's key is everyone's key.
            os.link(temporary, path)
        except FileExistsError:
            return load_private_key(path.read_text(encoding="ascii"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    log.info("auth.dev_signing_key_created", path=str(path), kid=public_jwk(key.public_key()).kid)
    return key


def load_key_store(settings: AuthSettings) -> KeyStore:
    """The key store the settings describe (parsed once, at start-up)."""
    if settings.jwt_signing_key is not None:
        signing_key = load_private_key(settings.jwt_signing_key.get_secret_value())
    else:
        signing_key = load_or_create_dev_key(settings.dev_signing_key_path)
    return KeyStore(signing_key, load_public_keys(settings.jwt_previous_public_keys))


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """What an access token says."""

    user_id: str
    role: Role
    session_id: str
    token_id: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    """A signed access token and its claims."""

    token: str
    claims: AccessTokenClaims


class AccessTokens:
    """Issues (and, for tests and local checks, verifies) the service's access tokens."""

    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, ttl_s: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def jwks(self) -> list[PublicJwk]:
        """The public keys that verify the tokens, the signing key's first."""
        return self._keys.jwks()

    def issue(
        self, *, user_id: str, role: Role, session_id: str, now: datetime
    ) -> IssuedAccessToken:
        """Sign an access token for one session of a user, valid `ttl_s` from `now`."""
        # Sub-second precision: revocation compares `iat` with a user's "not before".
        issued_at = round(now.timestamp(), 6)
        expires_at = int((now + timedelta(seconds=self.ttl_s)).timestamp())
        claims = AccessTokenClaims(
            user_id=user_id,
            role=role,
            session_id=session_id,
            token_id=uuid.uuid4().hex,
            issued_at=issued_at,
            expires_at=float(expires_at),
        )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "role": role.value,
            "sid": session_id,
            "iat": issued_at,
            "exp": expires_at,
            "jti": claims.token_id,
        }
        token = jwt.encode(
            payload,
            self._keys.signing_key,
            algorithm=ALGORITHM,
            headers={"kid": self._keys.signing_kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return IssuedAccessToken(token, claims)

    def verify(self, token: str, *, leeway_s: float = 5.0) -> AccessTokenClaims:
        """Check signature, type, issuer, audience and expiry; raise jwt.InvalidTokenError."""
        header = jwt.get_unverified_header(token)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise jwt.InvalidTokenError("not an access token")
        key = self._keys.public_key(str(header.get("kid", "")))
        if key is None:
            raise jwt.InvalidTokenError("unknown key")
        claims: Mapping[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self._audience,
            issuer=self._issuer,
            leeway=leeway_s,
            options={"require": list(REQUIRED_CLAIMS)},
        )
        return AccessTokenClaims(
            user_id=str(claims["sub"]),
            role=Role(claims["role"]),
            session_id=str(claims["sid"]),
            token_id=str(claims["jti"]),
            issued_at=float(claims["iat"]),
            expires_at=float(claims["exp"]),
        )


def new_opaque_token() -> str:
    """A fresh refresh or reset token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_opaque_token(token: str) -> str:
    """The SHA-256 (hex) under which an opaque token is stored and looked up.

    A fast hash suffices: the token has 256 random bits, nothing to brute-force.
    """
    return hashlib.sha256(token.encode()).hexdigest()
