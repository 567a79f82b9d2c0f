"""The Redis commands that apply each store record (:class:`RecordCommands`), and the
two Lua scripts among them; :class:`state.redis_store.RedisStore` sends them, one
pipeline per batch. The layout and the order in which records apply are in
:mod:`state.store`.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
import redis.client

from journeyflow.records import IdentityMerge, ProfileRow, SegmentChange
from state.store import Restore, StoreRecord, alias_key, profile_key, row_changes, segment_key, segments_json

__all__ = ["RecordCommands"]


# Sets updated_at (ARGV[1]) unless the hash holds a later one. Times are
# format_ts output: 20 characters without milliseconds, 24 with; padding the
# former to ".000Z" makes them compare as text in time order.
_KEEP_LATEST_UPDATED_AT = """
local function norm(s)
  if string.len(s) == 20 then return string.sub(s, 1, 19) .. '.000Z' end
  return s
end
local current = redis.call('HGET', KEYS[1], 'updated_at')
if (not current) or norm(current) < norm(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
end
return 0
"""


# Sets a user's segment list and memberships. KEYS[1]: the profile hash;
# ARGV: the user id, the segment keys' prefix ("jf:segment:"), the new list as
# JSON ("" deletes the hash instead), and segments to leave besides the old
# list (JSON). Touches segment keys it is not given in KEYS: standalone Redis.
_SYNC_SEGMENTS = """
local user, prefix = ARGV[1], ARGV[2]
local keep = {}
if ARGV[3] ~= '' then
  for _, s in ipairs(cjson.decode(ARGV[3])) do keep[s] = true end
end
local leave = cjson.decode(ARGV[4])
local old = redis.call('HGET', KEYS[1], 'segments')
if old then
  for _, s in ipairs(cjson.decode(old)) do leave[#leave + 1] = s end
end
for _, s in ipairs(leave) do
  if not keep[s] then redis.call('SREM', prefix .. s, user) end
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
for s, _ in pairs(keep) do redis.call('SADD', prefix .. s, user) end
redis.call('HSET', KEYS[1], 'segments', ARGV[3])
return 0
"""


class RecordCommands:
    """Queue the commands of store records on a pipeline, in record order.

    With ``ttl_s`` > 0 a record that writes a profile hash (or an alias) resets its
    expiry. The scripts are registered on ``client`` once; a pipeline loads them
    into Redis on its first use (EVALSHA, then SCRIPT LOAD if Redis lacks them).
    """

    def __init__(self, client: redis.Redis, *, key_prefix: str, ttl_s: int) -> None:
        self._keep_latest_updated_at = client.register_script(_KEEP_LATEST_UPDATED_AT)
        self._sync_segments = client.register_script(_SYNC_SEGMENTS)
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s

    def queue(self, pipe: redis.client.Pipeline, records: Sequence[StoreRecord]) -> None:
        """Add the commands of ``records`` to ``pipe`` (the caller executes it)."""
        prefix = self.key_prefix
        sets = segment_key(prefix, "")
        ttl = self.ttl_s
        for record in records:
            user = record.user_id
            if isinstance(record, IdentityMerge):
                pipe.set(alias_key(prefix, record.anonymous_id), user, ex=ttl or None)
                continue
            key = profile_key(prefix, user)
            if isinstance(record, ProfileRow):
                updates, deletes = row_changes(record)
                updated_at = updates.pop("updated_at")
                segments = updates.pop("segments", None)
                if updates:
                    pipe.hset(key, mapping=updates)
                if deletes:
                    pipe.hdel(key, *deletes)
                if segments is not None:
                    self._sync_segments(keys=[key], args=[user, sets, segments, "[]"], client=pipe)
                self._keep_latest_updated_at(keys=[key], args=[updated_at], client=pipe)
            elif isinstance(record, SegmentChange):
                new = segments_json(record.segments)
                self._sync_segments(keys=[key], args=[user, sets, new, segments_json(record.exited)], client=pipe)
            elif isinstance(record, Restore):
                fields = dict(record.fields)
                segments_text = fields.pop("segments", "[]")
                # Memberships first: the script leaves the segments of the list the
                # hash still holds, which deleting the hash first would forget.
                self._sync_segments(keys=[key], args=[user, sets, segments_text, "[]"], client=pipe)
                pipe.delete(key)
                pipe.hset(key, mapping={**fields, "segments": segments_text})
            else:
                self._sync_segments(keys=[key], args=[user, sets, "", segments_json(record.segments)], client=pipe)
                if record.aliases:
                    pipe.delete(*(alias_key(prefix, device) for device in record.aliases))
                continue
            if ttl:
                pipe.expire(key, ttl)
