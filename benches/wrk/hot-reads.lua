-- wrk script: the app's hot reads at a paced rate.
--   WRK_INTERVAL_MS=10 wrk -t1 -c50 -d30s --latency -s benches/wrk/hot-reads.lua \
--       http://127.0.0.1:18081 /api/v1/live /api/v1/videos/<id> …
-- Each connection sends one request every WRK_INTERVAL_MS (50 connections every 10 ms:
-- 5,000 requests/s); 0 means as fast as it can. The paths given after the URL are taken
-- in turn.
local interval = tonumber(os.getenv("WRK_INTERVAL_MS") or "0")
local paths = {}
local n = 0

function init(args)
  for i, a in ipairs(args) do
    paths[i] = a
  end
  if #paths == 0 then
    paths[1] = "/api/v1/live"
  end
end

function delay()
  return interval
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
