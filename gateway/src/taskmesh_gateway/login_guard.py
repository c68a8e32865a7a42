"""The login brute-force guard: too many failed logins for one email lock that email out.

After `max_failures` failed logins (the auth service answered UNAUTHENTICATED) for an email
within `window_s`, every further login attempt for it is refused with 429 — whatever the
password, and without asking the auth service — until the oldest of those failures leaves the
window. The attempts are kept per email as a sliding window in Redis, under a hash of the
normalised address, so the key names no one; the guard applies only to logging in, so it
cannot end a session someone already has (refresh and every other route are untouched).

Each attempt is counted as a failure from the moment it starts and uncounted when it turns
out not to be one, atomically in Redis: so a burst of concurrent guesses gets no more than
`max_failures` of them to the auth service, however many gateway instances it is spread over.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Final

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from taskmesh_gateway.metrics import count_rate_limited

log = structlog.get_logger(__name__)

BEGIN_ATTEMPT_LUA: Final = """
-- KEYS: attempts. ARGV: max failures, window ms, member.
-- Answers 0 after recording the attempt, else the ms until an attempt may be made.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max_failures, window_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
local counted = redis.call('ZCARD', KEYS[1])
if counted < max_failures then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return 0
end
-- Unlocked once so many attempts left the window that fewer than max_failures remain.
local index = counted - max_failures
local unlocking = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
return math.max(tonumber(unlocking[2]) + window_ms - now_ms, 1)
"""


def normalised_email(email: str) -> str:
    """The email as the auth service compares it: trimmed, case-folded."""
    return email.strip().lower()


def attempts_key(email: str) -> str:
    """Redis key of an email's failed logins; the email itself appears only as a hash."""
    digest = hashlib.sha256(normalised_email(email).encode("utf-8")).hexdigest()
    return f"taskmesh:login:failures:{digest}"


class LoginLocked(Exception):
    """Too many failed logins for the email; `retry_after_s` until the next may be tried."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"locked for {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One login attempt, counted as a failure until `LoginGuard.discount` says otherwise."""

    key: str
    member: str


class LoginGuard:
    """Counts failed logins per email and refuses attempts for a locked-out email."""

    def __init__(self, redis: Redis, *, max_failures: int, window_s: int) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._redis = redis
        self._begin = redis.register_script(BEGIN_ATTEMPT_LUA)

    async def begin(self, email: str) -> LoginAttempt:
        """Count an attempt for `email`; LoginLocked when the email is locked out."""
        attempt = LoginAttempt(attempts_key(email), os.urandom(8).hex())
        wait_ms = int(
            await self._begin(
                keys=[attempt.key],
                args=[self.max_failures, self.window_s * 1000, attempt.member],
            )
        )
        if wait_ms > 0:
            count_rate_limited("login")
            raise LoginLocked(math.ceil(wait_ms / 1000))
        return attempt

    async def discount(self, attempt: LoginAttempt) -> None:
        """The attempt was not a failed login (it succeeded, or never reached a verdict).

        Best effort: if Redis fails here the attempt stays counted, which only errs on the
        side of caution, and the login's own answer is not lost for it.
        """
        try:
            await self._redis.zrem(attempt.key, attempt.member)
        except RedisError as error:
            log.warning("login_guard.discount_failed", error_type=type(error).__name__)
