"""Rate limits: an exact sliding-window log per user or client IP in Redis, and its headers.

Each partition (`taskmesh:rl:user:{id}`, `taskmesh:rl:ip:{ip}`) is a sorted set of the
accepted requests of the last window, scored by Redis' own clock (so gateway instances need
no synchronised clocks). A request is accepted while fewer than `limit` are in the window:
in any window of `window_s` seconds, at most `limit` requests pass, across all instances.
Refused requests are not recorded, so a client that keeps hammering gets in again as soon as
its oldest accepted request leaves the window.

The headers follow draft-ietf-httpapi-ratelimit-headers (-09 and later):
`RateLimit-Policy: "user";q=100;w=60` and `RateLimit: "user";r=37;t=12` (docs/gateway.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

from taskmesh_gateway.revocation import IS_REVOKED_LUA

WINDOW_S: Final = 60

SLIDING_WINDOW_LUA: Final = """
local function charge(key, limit, window_ms, now_ms, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
  local used = redis.call('ZCARD', key)
  local allowed = 0
  if used < limit then
    redis.call('ZADD', key, now_ms, member)
    redis.call('PEXPIRE', key, window_ms)
    used = used + 1
    allowed = 1
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local wait_ms = window_ms
  if oldest[2] then
    wait_ms = tonumber(oldest[2]) + window_ms - now_ms
  end
  return {allowed, used, wait_ms}
end

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
"""
"""`charge` records one request in a partition if it has room; answers (allowed, used, ms until
the oldest recorded request leaves the window)."""

ADMIT_ANONYMOUS_LUA: Final = (
    SLIDING_WINDOW_LUA
    + """
-- KEYS: ip partition. ARGV: limit, window ms, member.
local result = charge(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms(), ARGV[3])
return {0, result[1], result[2], result[3]}
"""
)

ADMIT_CALLER_LUA: Final = (
    SLIDING_WINDOW_LUA
    + IS_REVOKED_LUA
    + """
-- KEYS: revoked jti, revoked sid, user not_before, user partition, ip partition.
-- ARGV: token iat, user limit, ip limit, window ms, member.
-- A revoked token is charged to the client's IP, like any other request without a caller.
local revoked = is_revoked(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
local key, limit = KEYS[4], tonumber(ARGV[2])
if revoked == 1 then
  key, limit = KEYS[5], tonumber(ARGV[3])
end
local result = charge(key, limit, tonumber(ARGV[4]), now_ms(), ARGV[5])
return {revoked, result[1], result[2], result[3]}
"""
)


def user_partition_key(user_id: str) -> str:
    """Redis key of a user's sliding window."""
    return f"taskmesh:rl:user:{user_id}"


def ip_partition_key(client_ip: str) -> str:
    """Redis key of a client IP's sliding window."""
    return f"taskmesh:rl:ip:{client_ip}"


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """A quota: `limit` requests per `window_s` seconds, per partition; `name` labels it."""

    name: str
    limit: int
    window_s: int = WINDOW_S
    header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        value = f'"{self.name}";q={self.limit};w={self.window_s}'.encode("ascii")
        object.__setattr__(self, "header", (b"ratelimit-policy", value))


@dataclass(frozen=True, slots=True)
class Quota:
    """The outcome of charging one request to a policy's partition."""

    policy: RateLimitPolicy
    allowed: bool
    remaining: int
    reset_s: int
    """Seconds until the oldest request in the window leaves it (the draft's `t`)."""

    @classmethod
    def from_window(cls, policy: RateLimitPolicy, allowed: bool, used: int, wait_ms: int) -> Quota:
        """Build it from what the sliding-window script answered."""
        reset_s = max(math.ceil(wait_ms / 1000), 1 if not allowed else 0)
        return cls(policy, allowed, max(policy.limit - used, 0), reset_s)

    @property
    def retry_after_s(self) -> int:
        """What `Retry-After` says on a refusal: when the next request would pass."""
        return max(self.reset_s, 1)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The `RateLimit-Policy` and `RateLimit` header fields of the response."""
        state = f'"{self.policy.name}";r={self.remaining};t={self.reset_s}'.encode("ascii")
        return [self.policy.header, (b"ratelimit", state)]
