-- wrk script for bench/run.sh's "pipelined" group: each connection sends
-- 16 GET requests of its URL at once and waits for the 16 responses
-- before the next batch (HTTP/1.1 pipelining, RFC 9112 section 9.3.2).
-- wrk counts every response as a request.
init = function(args)
   local batch = {}
   for i = 1, 16 do
      batch[i] = wrk.format(nil, nil)
   end
   pipelined = table.concat(batch)
end

request = function()
   return pipelined
end
