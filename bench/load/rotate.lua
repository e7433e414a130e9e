-- wrk script: rotate the Authorization header over the bench users' tokens.
-- usage: wrk ... -s rotate.lua URL -- PATH TOKENS_FILE
local requests = {}
local next_index = 0

function init(args)
  local path, tokens = args[1], args[2]
  for token in io.lines(tokens) do
    requests[#requests + 1] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
  end
end

function request()
  next_index = next_index % #requests + 1
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
