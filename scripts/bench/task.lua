-- wrk script for scripts/bench/node.sh: POST one plaintext IICP chat task to a node's
-- /v1/task on every request (no task_id: the node gives each task a fresh one), and print
-- the same JSON line as post.lua when done (latencies in microseconds).
local model = os.getenv("BENCH_MODEL") or "bench-model"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"intent":"urn:iicp:intent:llm:chat:v1","payload":{"model":"' .. model
  .. '","messages":[{"role":"user","content":"hi"}]}}'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,'
      .. '"lat_p99_us":%d,"lat_max_us":%d,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
