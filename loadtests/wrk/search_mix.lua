-- Search requests for make bench-search (wrk 4.1, LuaJIT / Lua 5.1, no modules).
--
-- Environment:
--   BENCH_SEARCH_FILE  requests, one per line: "<type>\t<path and query>\t<bearer token>"
--                      (one token per tenant; loadtests/bench_search.py writes one file per
--                      query type and one with the whole mix)
--
-- Each request is a random line of the file. done() prints one line "BENCH_JSON {...}":
-- p50/p95/p99 from wrk's own latency histogram, request count, duration, wrk's socket
-- errors and, counted by the response() hook in every thread: non2xx (status outside
-- 200-299) and empty (a 2xx answer with no hit: '"hits":[]' or '"items":[]').
--
-- BENCH_SEARCH_FILE=/tmp/mix.txt wrk -t2 -c16 -d10s --latency \
--   -s loadtests/wrk/search_mix.lua http://127.0.0.1:8310

local threads = {}
local counter = 0

local requests = {}
non2xx = 0
empty = 0

function setup(thread)
  counter = counter + 1
  thread:set("bench_thread_id", counter)
  table.insert(threads, thread)
end

local function read_requests(path)
  local file = io.open(path, "r")
  if file == nil then
    error("cannot read BENCH_SEARCH_FILE " .. tostring(path))
  end
  local out = {}
  for line in file:lines() do
    local _, req_path, token = string.match(line, "^([^\t]*)\t([^\t]+)\t([^\t]+)$")
    if req_path ~= nil then
      local headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Accept"] = "application/json",
      }
      table.insert(out, wrk.format("GET", req_path, headers))
    end
  end
  file:close()
  if #out == 0 then
    error(path .. " has no request lines")
  end
  return out
end

function init(args)
  local id = tonumber(wrk.thread and wrk.thread:get("bench_thread_id")) or 0
  math.randomseed(os.time() * 1000 + id * 7919)
  requests = read_requests(os.getenv("BENCH_SEARCH_FILE") or "search.txt")
end

function request()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif body ~= nil
    and (string.find(body, '"hits":[]', 1, true) or string.find(body, '"items":[]', 1, true))
  then
    empty = empty + 1
  end
end

local function ms(us)
  return string.format("%.3f", us / 1000.0)
end

function done(summary, latency, requests_)
  local bad, none = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (tonumber(thread:get("non2xx")) or 0)
    none = none + (tonumber(thread:get("empty")) or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_s":%.3f,"rps":%.2f,'
      .. '"p50_ms":%s,"p95_ms":%s,"p99_ms":%s,"mean_ms":%s,"max_ms":%s,'
      .. '"non2xx":%d,"empty":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    ms(latency:percentile(50)), ms(latency:percentile(95)), ms(latency:percentile(99)),
    ms(latency.mean), ms(latency.max), bad, none,
    e.connect, e.read, e.write, e.timeout, e.status
  ))
end
