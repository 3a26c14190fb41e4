-- Galaxy Edge Gateway: publish one client event into its user's history.
--
-- The one way client events enter the gateway (docs/event-streams.md). Atomically:
-- XADD into the user's history stream, trim it by count and age (recording the
-- newest id trimming removed), refresh the expiries, and PUBLISH the entry on the
-- user's channel as a MessagePack array [entry_id, field, value, ...], so an event
-- is never in the history without having been published live, or the reverse.
--
-- KEYS[1] <prefix>user:<user_id>     the history stream, also the pub/sub channel
-- KEYS[2] <prefix>trimmed:<user_id>  newest entry id trimming removed
-- KEYS[3] <prefix>config             max_events / ttl_ms as push-hub configured them
-- KEYS[4] (bridge only) the single client-events stream whose entry this moves
-- ARGV[1] (bridge only) consumer group to acknowledge the entry in, else ''
-- ARGV[2] (bridge only) the entry id to acknowledge, else ''
-- ARGV[3..] field, value, ... of the entry (docs/event-streams.md, "Client events")
-- Returns the new entry id.
local stream, trimmed = KEYS[1], KEYS[2]
local settings = redis.call('HMGET', KEYS[3], 'max_events', 'ttl_ms')
local max_events = tonumber(settings[1]) or 1000
local ttl_ms = tonumber(settings[2]) or 600000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call('XADD', stream, '*', unpack(ARGV, 3))
local cut = nil
local excess = redis.call('XLEN', stream) - max_events
if excess > 0 then
  local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
  cut = old[#old][1]
  redis.call('XTRIM', stream, 'MAXLEN', max_events)
end
local min_id = tostring(now - ttl_ms) .. '-0'
local stale = redis.call('XREVRANGE', stream, '(' .. min_id, '-', 'COUNT', 1)
if #stale > 0 then
  cut = stale[1][1]
  redis.call('XTRIM', stream, 'MINID', min_id)
end
if cut then
  redis.call('SET', trimmed, cut, 'PX', ttl_ms)
else
  redis.call('PEXPIRE', trimmed, ttl_ms)
end
redis.call('PEXPIRE', stream, ttl_ms)
local message = {id}
for i = 3, #ARGV do message[#message + 1] = ARGV[i] end
redis.call('PUBLISH', stream, cmsgpack.pack(message))
if ARGV[1] ~= '' then redis.call('XACK', KEYS[4], ARGV[1], ARGV[2]) end
return id
