-- wrk script for scripts/bench: POSTs the same signed Shopify customers/create body with
-- a fresh X-Shopify-Webhook-Id on every request, so each one is a new durable insert
-- (a repeated id would be answered "duplicate" without a write). The HMAC covers only
-- the body, so one signature serves every request.
local body_file = os.getenv("BENCH_BODY")
local hmac = os.getenv("BENCH_HMAC")
local run = os.getenv("BENCH_RUN") or "0"
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()

local thread_id = 0
local counter = 0
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = "customers/create",
    ["X-Shopify-Hmac-Sha256"] = hmac,
    ["X-Shopify-Shop-Domain"] = "bench.myshopify.com",
    ["X-Shopify-API-Version"] = "2026-07",
    ["X-Shopify-Webhook-Id"] = "wrk-" .. run .. "-" .. thread_id .. "-" .. counter,
  }, body)
end
