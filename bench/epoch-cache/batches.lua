-- wrk script: each request is POST /v1/segments with a batch of documents shaped like
-- a mesh's: BENCH_TRACES traces of BENCH_DOCS_PER_TRACE documents each, every other
-- trace with a foreign id (raw 32 hex, no epoch in it) and the others with X-Ray ids.
-- Of the foreign traces, BENCH_CARRIED continue from the previous batch of the same
-- connection (hits across batches); the rest are new (misses).
local traces = tonumber(os.getenv("BENCH_TRACES") or "10")
local docs_per_trace = tonumber(os.getenv("BENCH_DOCS_PER_TRACE") or "5")
local carried = tonumber(os.getenv("BENCH_CARRIED") or "2")

local counter = 0
local previous = {}

local function hex32()
  return string.format("%08x", math.random(0, 0x7fffffff) * 2 + math.random(0, 1))
end

local function span_id()
  counter = counter + 1
  return string.format("%08x%08x", math.random(0, 0x7fffffff), counter % 0x7fffffff)
end

local function document(trace_id, start)
  return string.format(
    '{"name":"reviews","id":"%s","trace_id":"%s","start_time":%.3f,"end_time":%.3f,'
      .. '"http":{"request":{"method":"GET","url":"http://reviews:9080/reviews/0"},'
      .. '"response":{"status":200}},"annotations":{"istio_namespace":"default"}}',
    span_id(), trace_id, start, start + 0.012)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):sub(8), 16) or 0) % 1000)
end

function request()
  local now = os.time()
  local docs = {}
  local foreign = {}
  for t = 1, traces do
    local trace_id
    if t % 2 == 0 then
      trace_id = string.format("1-%08x-%s%s%s", now, hex32(), hex32(), hex32())
    else
      local k = #foreign + 1
      if k <= carried and previous[k] then
        trace_id = previous[k]
      else
        -- First 8 hex digits below 0x40000000: a "time" before 2004, so foreign.
        trace_id = string.format("%08x%s%s%s", math.random(1, 0x3fffffff), hex32(), hex32(), hex32())
      end
      foreign[k] = trace_id
    end
    for d = 1, docs_per_trace do
      docs[#docs + 1] = document(trace_id, now - 1 + d * 0.01)
    end
  end
  previous = foreign
  return wrk.format("POST", "/v1/segments", {["Content-Type"] = "application/json"},
    "[" .. table.concat(docs, ",") .. "]")
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. ": " .. body .. "\n")
  end
end
