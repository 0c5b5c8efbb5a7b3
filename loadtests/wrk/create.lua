-- POST /v1/pocs with a small valid body; expects 201.
-- BENCH_TOKEN=... wrk -t2 -c32 -d15s --latency -s loadtests/wrk/create.lua http://127.0.0.1:8000
dofile((os.getenv("BENCH_LUA_DIR") or "loadtests/wrk") .. "/common.lua")

local thread_id = 0
local n = 0
local headers = {}
for k, v in pairs(common.headers) do
  headers[k] = v
end
headers["Content-Type"] = "application/json"

setup = common.setup
done = common.done

function init(args)
  thread_id = common.thread_seed()
end

function request()
  n = n + 1
  local body = string.format(
    '{"name":"bench t%d n%d","languages":["python"],"tags":["bench"]}', thread_id, n
  )
  return wrk.format("POST", "/v1/pocs", headers, body)
end
