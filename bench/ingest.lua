-- wrk script for bench_ingest.py: POST /api/v1/reports with pre-generated agents.
-- The requests file (KIEMKE_WRK_REQUESTS) holds one agent per two lines: the
-- Authorization header value, then the report JSON with the placeholder report_id.
-- Every request gets a fresh report_id (thread number + counter), so each is a real insert.
-- No response() callback: it would cost wrk time per request; any non-2xx answer is
-- counted by wrk itself (errors.status).
local MARK = "00000000%-0000%-4000%-8000%-000000000000"  -- a Lua pattern: '-' escaped
local counter = 1
local thread_no = 0
local agents = {}

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
end

function init(args)
  local path = os.getenv("KIEMKE_WRK_REQUESTS")
  local file = assert(io.open(path, "rb"))
  while true do
    local auth = file:read("*l")
    local body = file:read("*l")
    if not auth or not body then break end
    agents[#agents + 1] = {auth = auth, body = body}
  end
  file:close()
  counter = thread_no * 7919  -- threads start on different agents
end

function request()
  counter = counter + 1
  local agent = agents[counter % #agents + 1]
  local id = string.format("%08x-0000-4000-8000-%012x", thread_no, counter)
  local body = string.gsub(agent.body, MARK, id, 1)
  return wrk.format("POST", "/api/v1/reports", {
    ["Authorization"] = agent.auth,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("KIEMKE_WRK requests=%d errors_status=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
