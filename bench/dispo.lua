-- wrk script: a VICIdial Dispo Call URL, encoded as VICIdial encodes it, with a new
-- lead_id / uniqueid on every request so each one is a distinct call.
-- wrk -t2 -c32 -d30s --latency -s bench/dispo.lua http://127.0.0.1:8080
local counter = 0
-- Now, as VICIdial would send it: serve keeps call notes (the disposition watchdog) only for
-- calls of the last two days, so an old epoch would skip that part of the ingest path.
local epoch = os.time()
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local lead = tid * 10000000 + counter
  local path = "/vicidial/dispo?token=local-example-token-change-me&lead_id=" .. lead ..
    "&vendor_lead_code=&list_id=999&phone_code=1&phone_number=7275558888&first_name=Bob&last_name=O%27Brien" ..
    "&email=a+b%40x.com&user=1000&campaign=TESTCAMP&uniqueid=1795298900." .. lead ..
    "&call_id=M1121220900000000009&epoch=" .. epoch .. "&dispo=SALE&dispo_name=Sale%2BMade&talk_time=63" ..
    "&recording_filename=20261121-220900_7275558888_1000-all&recording_id=17&callback_datetime=&call_notes=+"
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local non200 = summary.errors.status
  io.write(string.format("non-2xx answers: %d, socket errors: %d\n", non200,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
