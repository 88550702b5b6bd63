-- wrk script for `make bench`: GET or POST /allies/<id>/credentials over many ally ids.
-- ALLY_IDS names a file with one id per line; BENCH_METHOD is GET or POST; BENCH_CLIENTS=N sends
-- X-Forwarded-For with one of N client addresses in turn (for an API that trusts one proxy).
local ids = {}
for line in io.lines(os.getenv("ALLY_IDS")) do ids[#ids + 1] = line end
local method = os.getenv("BENCH_METHOD") or "GET"
local clients = tonumber(os.getenv("BENCH_CLIENTS") or "0")
local counter = 0

function setup(thread)
  thread:set("start", math.random(#ids))
end

function request()
  counter = counter + 1
  local id = ids[((start or 0) + counter) % #ids + 1]
  local path = "/allies/" .. id .. "/credentials"
  local headers = {}
  if clients > 0 then
    local n = ((start or 0) + counter) % clients
    headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    local body = '{"username": "bench_user", "password": "}bench:pw' .. counter .. '{"}'
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d, "bad_status": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
