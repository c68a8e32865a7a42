"""Whether an access token has been revoked, decided in Redis by one Lua function.

The auth service writes the revocation keys (`taskmesh_chassis.identity`): the token's `jti`,
its login session `sid`, and the user's "not before" instant. `IS_REVOKED_LUA` reads them; it
is part of the admission script (`rate_limits.ADMIT_CALLER_LUA`), which checks one request, and
of `CHECK_REVOKED_LUA`, which checks the tokens of every open WebSocket at once, so both
decide by the very same rule.
"""

from __future__ import annotations

from typing import Final

from taskmesh_chassis.identity import (
    Caller,
    not_before_key,
    revoked_session_key,
    revoked_token_key,
)

IS_REVOKED_LUA: Final = """
local function is_revoked(token_key, session_key, not_before_key, issued_at)
  if redis.call('EXISTS', token_key, session_key) > 0 then
    return 1
  end
  local not_before = redis.call('GET', not_before_key)
  -- An unreadable not_before revokes rather than accepts.
  if not_before and tonumber(issued_at) < (tonumber(not_before) or math.huge) then
    return 1
  end
  return 0
end
"""
"""`is_revoked(jti key, sid key, not_before key, iat)`: 1 when the token is revoked, else 0."""

CHECK_REVOKED_LUA: Final = (
    IS_REVOKED_LUA
    + """
-- KEYS: the three revocation keys of each token in turn. ARGV: each token's iat.
local revoked = {}
for index = 1, #ARGV do
  local base = (index - 1) * 3
  revoked[index] = is_revoked(KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], ARGV[index])
end
return revoked
"""
)


def revocation_keys(caller: Caller) -> list[str]:
    """The Redis keys whose values revoke the caller's token (the order `is_revoked` takes)."""
    return [
        revoked_token_key(caller.token_id),
        revoked_session_key(caller.session_id),
        not_before_key(caller.user_id),
    ]
