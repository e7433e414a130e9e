-- wrk script: rotate the Authorization header over the bench users' tokens.
-- usage: wrk ... -s rotate.lua URL -- PATH TOKENS_FILE [CLOSE_EVERY]
-- CLOSE_EVERY > 0: every CLOSE_EVERY-th request asks `Connection: close`, so wrk reconnects
-- that connection (bench/workers.py: spreads connections over a server's workers).
local requests = {}
local closing = {}
local next_index = 0
local close_every = 0
local sent = 0

function init(args)
  local path, tokens = args[1], args[2]
  close_every = tonumber(args[3] or "0")
  for token in io.lines(tokens) do
    local auth = "Bearer " .. token
    requests[#requests + 1] = wrk.format("GET", path, { ["Authorization"] = auth })
    if close_every > 0 then
      closing[#closing + 1] = wrk.format(
        "GET", path, { ["Authorization"] = auth, ["Connection"] = "close" })
    end
  end
end

function request()
  next_index = next_index % #requests + 1
  sent = sent + 1
  if close_every > 0 and sent % close_every == 0 then
    return closing[next_index]
  end
  return requests[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
