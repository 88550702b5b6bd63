-- wrk script for `make bench`: GET or POST /allies/<id>/credentials over many ally ids.
-- ALLY_IDS names a file with one id per line; BENCH_METHOD is GET or POST.
local ids = {}
for line in io.lines(os.getenv("ALLY_IDS")) do ids[#ids + 1] = line end
local method = os.getenv("BENCH_METHOD") or "GET"
local counter = 0

function setup(thread)
  thread:set("start", math.random(#ids))
end

function request()
  counter = counter + 1
  local id = ids[((start or 0) + counter) % #ids + 1]
  local path = "/allies/" .. id .. "/credentials"
  if method == "POST" then
    local body = '{"username": "bench_user", "password": "}bench:pw' .. counter .. '{"}'
    return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "socket_errors": %d, "bad_status": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
