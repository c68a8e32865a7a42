"""Access tokens, the published keys and opaque tokens."""

from __future__ import annotations

import base64
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from taskmesh_auth.domain import Role
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import (
    AccessTokens,
    KeyStore,
    UnusableKey,
    hash_opaque_token,
    jwk_thumbprint,
    load_key_store,
    load_or_create_dev_key,
    new_opaque_token,
    private_key_pem,
    public_jwk,
    public_key_pem,
)
from taskmesh_chassis.identity import StaticJwksProvider, TokenVerifier

# RFC 8037, appendix A.2/A.3: the example Ed25519 public key and its RFC 7638 thumbprint.
RFC_8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def issue(tokens: AccessTokens, **overrides: object) -> str:
    arguments: dict[str, object] = {
        "user_id": "65f0c0ffee0000000000aaaa",
        "role": Role.USER,
        "session_id": "s1",
        "now": datetime.now(UTC),
    }
    arguments.update(overrides)
    return tokens.issue(**arguments).token  # type: ignore[arg-type]


@pytest.fixture
def keys() -> KeyStore:
    return KeyStore(Ed25519PrivateKey.generate())


@pytest.fixture
def tokens(keys: KeyStore) -> AccessTokens:
    return AccessTokens(keys, issuer="taskmesh", audience="taskmesh-api", ttl_s=900)


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    assert jwk_thumbprint(RFC_8037_X) == RFC_8037_THUMBPRINT


def test_jwk_of_a_key_carries_its_raw_public_bytes(keys: KeyStore) -> None:
    jwk = public_jwk(keys.signing_key.public_key())

    raw = base64.urlsafe_b64decode(jwk.x + "=")
    assert Ed25519PublicKey.from_public_bytes(raw) == keys.signing_key.public_key()
    assert (jwk.kty, jwk.crv, jwk.alg, jwk.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk.kid == jwk_thumbprint(jwk.x)


def test_access_token_header_names_key_and_type(tokens: AccessTokens, keys: KeyStore) -> None:
    header = jwt.get_unverified_header(issue(tokens))

    assert header == {"alg": "EdDSA", "kid": keys.signing_kid, "typ": "at+jwt"}


def test_access_token_carries_every_claim(tokens: AccessTokens) -> None:
    now = datetime(2026, 11, 28, 9, 42, 14, 123456, tzinfo=UTC)

    token = issue(tokens, role=Role.ADMIN, session_id="session-7", now=now)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "iss": "taskmesh",
        "aud": "taskmesh-api",
        "sub": "65f0c0ffee0000000000aaaa",
        "role": "admin",
        "sid": "session-7",
        "iat": now.timestamp(),
        "exp": int(now.timestamp()) + 900,
        "jti": claims["jti"],
    }
    assert claims["iat"] % 1 == pytest.approx(0.123456)


def test_every_token_has_its_own_jti(tokens: AccessTokens) -> None:
    ids = {jwt.decode(issue(tokens), options={"verify_signature": False})["jti"] for _ in range(50)}

    assert len(ids) == 50


async def test_chassis_verifier_accepts_our_tokens(tokens: AccessTokens, keys: KeyStore) -> None:
    verifier = TokenVerifier(
        StaticJwksProvider(keys.public_keys()), issuer="taskmesh", audience="taskmesh-api"
    )

    caller = await verifier.verify(issue(tokens, session_id="s-42"))

    assert (caller.user_id, caller.role, caller.session_id) == (
        "65f0c0ffee0000000000aaaa",
        "user",
        "s-42",
    )
    assert caller.expires_at - caller.issued_at == pytest.approx(900, abs=1)


def test_tokens_of_a_retired_key_verify_while_it_is_published(keys: KeyStore) -> None:
    old_tokens = AccessTokens(keys, issuer="taskmesh", audience="taskmesh-api", ttl_s=900)
    token = issue(old_tokens)
    rotated = KeyStore(Ed25519PrivateKey.generate(), [keys.signing_key.public_key()])
    new_tokens = AccessTokens(rotated, issuer="taskmesh", audience="taskmesh-api", ttl_s=900)

    assert new_tokens.verify(token).user_id == "65f0c0ffee0000000000aaaa"
    assert [jwk.kid for jwk in rotated.jwks()] == [rotated.signing_kid, keys.signing_kid]


def test_token_of_an_unpublished_key_is_rejected(tokens: AccessTokens) -> None:
    stranger = AccessTokens(
        KeyStore(Ed25519PrivateKey.generate()),
        issuer="taskmesh",
        audience="taskmesh-api",
        ttl_s=900,
    )

    with pytest.raises(jwt.InvalidTokenError):
        tokens.verify(issue(stranger))


def test_expired_token_is_rejected(tokens: AccessTokens) -> None:
    token = issue(tokens, now=datetime.fromtimestamp(time.time() - 1000, UTC))

    with pytest.raises(jwt.ExpiredSignatureError):
        tokens.verify(token)


def test_signing_key_and_previous_keys_come_from_settings(tmp_path: Path) -> None:
    current, previous = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    settings = AuthSettings(
        environment="production",
        jwt_signing_key=private_key_pem(current).decode(),
        jwt_previous_public_keys=public_key_pem(previous.public_key()).decode(),
        dev_signing_key_path=tmp_path / "unused.pem",
    )

    store = load_key_store(settings)

    assert store.signing_kid == public_jwk(current.public_key()).kid
    assert len(store.jwks()) == 2
    assert not (tmp_path / "unused.pem").exists()


def test_a_garbled_signing_key_is_refused() -> None:
    settings = AuthSettings(
        environment="production", jwt_signing_key="-----BEGIN PRIVATE KEY-----\nxx"
    )

    with pytest.raises(UnusableKey):
        load_key_store(settings)


def test_a_signing_key_of_another_kind_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    settings = AuthSettings(environment="production", jwt_signing_key=pem.decode())

    with pytest.raises(UnusableKey):
        load_key_store(settings)


def test_development_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "dev-signing-key.pem"

    first = load_or_create_dev_key(path)
    second = load_or_create_dev_key(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_jwk(first.public_key()) == public_jwk(second.public_key())
    assert list(path.parent.iterdir()) == [path]


def test_refresh_tokens_have_256_random_bits_and_are_stored_hashed() -> None:
    token = new_opaque_token()

    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert hash_opaque_token(token) != token
    assert len(hash_opaque_token(token)) == 64
    assert new_opaque_token() != token
