-- wrk script of the bench suite: SMS send POSTs in either carrier's wire format.
--
--   wrk -t2 -c16 -d8s -s bench/wrk_send.lua http://127.0.0.1:PORT -- \
--       DIALECT AUTHORIZATION PATH FROM FIRST STEP COUNT THREADS
--
-- DIALECT is "twilio" (form-encoded Messages.json) or "ringcentral" (JSON .../sms). Recipients
-- are +1(FIRST + STEP * k) for k rotating over 0 .. COUNT-1; the THREADS wrk threads start at
-- evenly spaced offsets, so a short run with a large COUNT sends to recipients nobody asked for
-- before (a cold cache). Small rotations are built once; large ones per request. done() prints one JSON line
-- "WRK_RESULT {...}" that bench/suite.py reads (latencies in microseconds).

local dialect, authorization, path, sender, first, step, count, thread_count
local prebuilt = {}
local position = 0
local text = "Your appointment is confirmed for tomorrow at 10:00."
local threads = {}
thread_index = 0 -- a global: setup() sets it in each thread's own Lua state

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local function urlencode(value)
  return (value:gsub("[^%w%-%._~ ]", function(c)
    return string.format("%%%02X", string.byte(c))
  end):gsub(" ", "+"))
end

local function build(k)
  local to = string.format("+1%d", first + step * k)
  local headers = { ["Authorization"] = authorization, ["Accept"] = "application/json" }
  local body
  if dialect == "twilio" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    body = "To=" .. urlencode(to) .. "&From=" .. urlencode(sender) .. "&Body=" .. urlencode(text)
  else
    headers["Content-Type"] = "application/json"
    body = '{"from":{"phoneNumber":"' .. sender .. '"},"to":[{"phoneNumber":"' .. to ..
      '"}],"text":"' .. text .. '"}'
  end
  return wrk.format("POST", path, headers, body)
end

function init(args)
  dialect, authorization, path, sender = args[1], args[2], args[3], args[4]
  first, step, count = tonumber(args[5]), tonumber(args[6]), tonumber(args[7])
  thread_count = tonumber(args[8])
  position = math.floor(thread_index * count / thread_count) % count
  if count <= 5000 then
    for k = 0, count - 1 do
      prebuilt[k] = build(k)
    end
  end
end

function request()
  local k = position
  position = (position + 1) % count
  return prebuilt[k] or build(k)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
