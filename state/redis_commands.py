"""The Redis commands that apply each store record (:class:`RecordCommands`), and the
three Lua scripts among them; :class:`state.redis_store.RedisStore` sends them, one
round trip per batch. The layout and the order in which records apply are in
:mod:`state.store`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from journeyflow.records import IdentityMerge, Tombstone
from state.coalesce import RowPatch, coalesce
from state.store import ERASED_GUARD_S, Restore, StoreRecord, alias_key, erased_key, profile_key, segment_key, segments_json

__all__ = ["Command", "RecordCommands"]


# Sets a hash's updated_at unless it holds a later one. Times are format_ts
# output: 20 characters without milliseconds, 24 with; padding the former to
# ".000Z" makes them compare as text in time order.
_KEEP_LATEST_FUNCTION = """
local function norm(s)
  if string.len(s) == 20 then return string.sub(s, 1, 19) .. '.000Z' end
  return s
end
local function keep_latest(key, updated_at)
  local current = redis.call('HGET', key, 'updated_at')
  if (not current) or norm(current) < norm(updated_at) then
    redis.call('HSET', key, 'updated_at', updated_at)
  end
end
"""


# The segment list and memberships: sync(key, user, prefix, new list as JSON
# or "" to delete the hash instead, segments to leave besides the old list).
# Touches segment keys it is not given in KEYS: standalone Redis.
_SYNC_FUNCTION = """
local function sync(key, user, prefix, new, leave)
  local keep = {}
  if new ~= '' then
    for _, s in ipairs(cjson.decode(new)) do keep[s] = true end
  end
  local old = redis.call('HGET', key, 'segments')
  if old then
    for _, s in ipairs(cjson.decode(old)) do leave[#leave + 1] = s end
  end
  for _, s in ipairs(leave) do
    if not keep[s] then redis.call('SREM', prefix .. s, user) end
  end
  if new == '' then
    redis.call('DEL', key)
    return
  end
  for s, _ in pairs(keep) do redis.call('SADD', prefix .. s, user) end
  redis.call('HSET', key, 'segments', new)
end
"""

# Sets a user's segment list and memberships. KEYS[1]: the profile hash;
# ARGV: the user id, the segment keys' prefix ("jf:segment:"), the new list as
# JSON ("" deletes the hash instead), and segments to leave besides the old
# list (JSON).
_SYNC_SEGMENTS = _SYNC_FUNCTION + """
sync(KEYS[1], ARGV[1], ARGV[2], ARGV[3], cjson.decode(ARGV[4]))
return 0
"""

# A user's rows and segment changes of a batch in one command (state/coalesce.py:
# one EVALSHA instead of HSET, HDEL, two scripts and EXPIRE per record, which
# cost the worker most of its time in redis-py). KEYS[1]: the profile hash;
# ARGV: the user id, the segment keys' prefix, updated_at ("" leaves it), the
# segment list as JSON ("" leaves it), segments to leave besides the old list
# (JSON), the TTL in seconds (0: none), the number N of fields to set, N
# name/value pairs, then the names of the fields to delete. Applied in that
# order: fields, deletions, segments, updated_at (only forward), expiry.
_APPLY_PATCH = _SYNC_FUNCTION + _KEEP_LATEST_FUNCTION + """
local key, n = KEYS[1], tonumber(ARGV[7])
local first_delete = 8 + 2 * n
if n > 0 then redis.call('HSET', key, unpack(ARGV, 8, first_delete - 1)) end
if #ARGV >= first_delete then redis.call('HDEL', key, unpack(ARGV, first_delete, #ARGV)) end
if ARGV[4] ~= '' then sync(key, ARGV[1], ARGV[2], ARGV[4], cjson.decode(ARGV[5])) end
if ARGV[3] ~= '' then keep_latest(key, ARGV[3]) end
local ttl = tonumber(ARGV[6])
if ttl > 0 then redis.call('EXPIRE', key, ttl) end
return 0
"""


# A device's alias, unless its customer was erased at or after the link's time
# (state/store.py). KEYS[1]: the alias, KEYS[2]: the customer's erased key;
# ARGV: the customer id, the link's time (ms), the TTL in seconds (0: none).
_LINK_ALIAS = """
local erased = redis.call('GET', KEYS[2])
if erased and tonumber(erased) >= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


Command = tuple[str | int, ...]
"""One Redis command: its name and arguments, as sent (``hiredis.pack_command`` packs it)."""


class RecordCommands:
    """Build the commands of store records, in record order (each user's rows and
    segment changes of the batch merged into one command: :mod:`state.coalesce`).

    With ``ttl_s`` > 0 a record that writes a profile hash (or an alias) resets its
    expiry. The scripts run by their SHA1 (EVALSHA): send :attr:`load` before
    the commands that use them, in the same round trip (SCRIPT LOAD of a script
    Redis holds already only looks it up), so a Redis that restarted empty never
    answers NOSCRIPT.
    """

    def __init__(self, *, key_prefix: str, ttl_s: int) -> None:
        self._apply_patch = _sha1(_APPLY_PATCH)
        self._sync_segments = _sha1(_SYNC_SEGMENTS)
        self._link_alias = _sha1(_LINK_ALIAS)
        self.load: list[Command] = [
            ("SCRIPT", "LOAD", _APPLY_PATCH), ("SCRIPT", "LOAD", _SYNC_SEGMENTS), ("SCRIPT", "LOAD", _LINK_ALIAS)
        ]
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s

    def commands(self, records: Sequence[StoreRecord]) -> list[Command]:
        """Return the commands that apply ``records``, in order (the caller sends them)."""
        prefix = self.key_prefix
        sets = segment_key(prefix, "")
        ttl = self.ttl_s
        out: list[Command] = []
        for record in coalesce(records):
            if isinstance(record, RowPatch):
                user = record.user_id
                leave = orjson.dumps(sorted(record.leave)).decode() if record.leave else "[]"
                args: list[str | int] = [
                    "EVALSHA", self._apply_patch, 1, profile_key(prefix, user),
                    user, sets, record.updated_at, record.segments, leave, ttl, len(record.updates),
                ]
                for pair in record.updates.items():
                    args.extend(pair)
                args.extend(record.deletes)
                out.append(tuple(args))
                continue  # the script set the expiry
            user = record.user_id
            if isinstance(record, IdentityMerge):
                alias = alias_key(prefix, record.anonymous_id)
                out.append(("EVALSHA", self._link_alias, 2, alias, erased_key(prefix, user), user, record.ts_ms, ttl))
                continue
            key = profile_key(prefix, user)
            if isinstance(record, Restore):
                fields = dict(record.fields)
                segments_text = fields.pop("segments", "[]")
                # Memberships first: the script leaves the segments of the list the
                # hash still holds, which deleting the hash first would forget.
                out.append(("EVALSHA", self._sync_segments, 1, key, user, sets, segments_text, "[]"))
                out.append(("DEL", key))
                pairs: list[str] = []
                for pair in {**fields, "segments": segments_text}.items():
                    pairs.extend(pair)
                out.append(("HSET", key, *pairs))
            elif isinstance(record, Tombstone):
                out.append(("EVALSHA", self._sync_segments, 1, key, user, sets, "", segments_json(record.segments)))
                if record.aliases:
                    out.append(("DEL", *(alias_key(prefix, device) for device in record.aliases)))
                    out.append(("SET", erased_key(prefix, user), record.ts_ms, "EX", ERASED_GUARD_S))
                continue
            if ttl:
                out.append(("EXPIRE", key, ttl))
        return out


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode("utf-8")).hexdigest()
