"""Password hashing: argon2id, run in a worker thread so the event loop never waits on it."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from taskmesh_auth.settings import MIN_PASSWORD_HASH_MEMORY_KIB, MIN_PASSWORD_HASH_TIME_COST

log = structlog.get_logger(__name__)


class PasswordHasher(Protocol):
    """Hashes and checks passwords; tells when a stored hash is weaker than current policy."""

    async def hash(self, password: str) -> str:
        """A new salted hash of `password`."""
        ...

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash`."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other (older) parameters than the current ones."""
        ...


class Argon2PasswordHasher:
    """argon2id with at least OWASP's parameters (19 MiB, 2 iterations, 1 lane)."""

    def __init__(
        self,
        *,
        memory_kib: int = MIN_PASSWORD_HASH_MEMORY_KIB,
        time_cost: int = MIN_PASSWORD_HASH_TIME_COST,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=1,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )

    async def hash(self, password: str) -> str:
        """A new salted argon2id hash of `password`, computed in a worker thread."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches, checked in a worker thread; False for a garbled hash."""
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError) as error:
            log.warning("password.unverifiable_hash", error_type=type(error).__name__)
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the stored hash uses parameters other than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
