-- wrk script: POST one applicant to /predict with a bearer token (TOKEN env var), and fail loudly on
-- any non-200 answer so that "zero failed requests" is checked, not assumed.
local token = os.getenv("TOKEN") or error("set TOKEN to a bearer token")
wrk.method = "POST"
wrk.body = '{"gre_score":320,"toefl_score":110,"university_rating":4,"sop":4.5,"lor":4.0,"cgpa":9.1,"research":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local bad = 0
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_s=%.1f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
