-- wrk script: POST one seed-model row to /v2/models/seed/infer with the bench key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CHARTER_KEY")
wrk.body = '{"inputs":[{"name":"x","shape":[1,10],"datatype":"FP32","data":[0.1,-0.2,0.3,-0.4,0.5,-0.6,0.7,-0.8,0.9,-1.0]}]}'

function done(summary, latency, requests)
  io.write(string.format("p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests/s %.0f  errors %d (status %d)\n",
    summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
