-- Shared by create.lua, get.lua and list.lua (wrk 4.1, LuaJIT / Lua 5.1, no modules).
--
-- Environment:
--   BENCH_TOKEN     bearer token (required)
--   BENCH_IDS_FILE  file with one PoC id per line (get.lua only)
--
-- Every script prints one line "BENCH_JSON {...}" from done(): p50/p95/p99 from wrk's own
-- latency histogram, request count, duration and error counts (errors.status is every
-- response with an HTTP status >= 400, as wrk counts it).

common = {}

local token = os.getenv("BENCH_TOKEN")
if token == nil or token == "" then
  error("set BENCH_TOKEN to a bearer token (pocdojo token --email alice@acme.test)")
end

common.headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Accept"] = "application/json",
}

-- Threads are numbered in setup() so each one seeds its random numbers differently.
local counter = 0
local threads = {}

function common.setup(thread)
  counter = counter + 1
  thread:set("bench_thread_id", counter)
  table.insert(threads, thread)
end

function common.thread_seed()
  local id = tonumber(wrk.thread and wrk.thread:get("bench_thread_id")) or 0
  math.randomseed(os.time() * 1000 + id * 7919)
  return id
end

function common.read_lines(path)
  local lines = {}
  local file = io.open(path, "r")
  if file == nil then
    error("cannot read " .. tostring(path))
  end
  for line in file:lines() do
    if line ~= "" then
      table.insert(lines, line)
    end
  end
  file:close()
  if #lines == 0 then
    error(path .. " has no ids")
  end
  return lines
end

local function ms(us)
  return string.format("%.3f", us / 1000.0)
end

function common.done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,'
      .. '"p50_ms":%s,"p75_ms":%s,"p90_ms":%s,"p95_ms":%s,"p99_ms":%s,'
      .. '"mean_ms":%s,"max_ms":%s,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    ms(latency:percentile(50)), ms(latency:percentile(75)), ms(latency:percentile(90)),
    ms(latency:percentile(95)), ms(latency:percentile(99)),
    ms(latency.mean), ms(latency.max), summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status
  ))
end

return common
