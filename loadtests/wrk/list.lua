-- GET /v1/pocs?limit=20 (the first page, newest first); expects 200.
-- BENCH_TOKEN=... wrk -t2 -c32 -d15s --latency -s loadtests/wrk/list.lua http://127.0.0.1:8000
dofile((os.getenv("BENCH_LUA_DIR") or "loadtests/wrk") .. "/common.lua")

local req = nil

setup = common.setup
done = common.done

function init(args)
  req = wrk.format("GET", "/v1/pocs?limit=20", common.headers)
end

function request()
  return req
end
