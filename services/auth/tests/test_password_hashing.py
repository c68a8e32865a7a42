"""argon2id password hashing."""

from __future__ import annotations

import pytest
from taskmesh_auth.passwords import Argon2PasswordHasher


@pytest.fixture
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher()


async def test_hash_is_argon2id_with_at_least_owasp_parameters(
    hasher: Argon2PasswordHasher,
) -> None:
    password_hash = await hasher.hash("correct horse battery staple")

    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_right_password_verifies_and_wrong_one_does_not(
    hasher: Argon2PasswordHasher,
) -> None:
    password_hash = await hasher.hash("correct horse battery staple")

    assert await hasher.verify(password_hash, "correct horse battery staple")
    assert not await hasher.verify(password_hash, "Correct horse battery staple")


async def test_same_password_hashes_differently_each_time(hasher: Argon2PasswordHasher) -> None:
    assert await hasher.hash("same password") != await hasher.hash("same password")


async def test_garbled_hash_never_verifies(hasher: Argon2PasswordHasher) -> None:
    assert not await hasher.verify("$argon2id$garbage", "anything")
    assert hasher.needs_rehash("$argon2id$garbage")


async def test_hash_of_weaker_parameters_needs_rehash(hasher: Argon2PasswordHasher) -> None:
    stronger = Argon2PasswordHasher(memory_kib=32_768, time_cost=3)
    password_hash = await hasher.hash("correct horse battery staple")

    assert not hasher.needs_rehash(password_hash)
    assert stronger.needs_rehash(password_hash)
    assert await stronger.verify(password_hash, "correct horse battery staple")
