-- GET /v1/pocs/{id} for a random id of BENCH_IDS_FILE (one id per line); expects 200.
-- BENCH_TOKEN=... BENCH_IDS_FILE=ids.txt wrk -t2 -c32 -d15s --latency \
--   -s loadtests/wrk/get.lua http://127.0.0.1:8000
dofile((os.getenv("BENCH_LUA_DIR") or "loadtests/wrk") .. "/common.lua")

local ids = {}
local requests = {}

setup = common.setup
done = common.done

function init(args)
  common.thread_seed()
  ids = common.read_lines(os.getenv("BENCH_IDS_FILE") or "ids.txt")
  -- Pre-format one request per id: request() then costs a table lookup.
  for i, id in ipairs(ids) do
    requests[i] = wrk.format("GET", "/v1/pocs/" .. id, common.headers)
  end
end

function request()
  return requests[math.random(#requests)]
end
