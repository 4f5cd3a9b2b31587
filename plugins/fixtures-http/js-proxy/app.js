// world: http-proxy
// An HTTP plugin of the standard wasi:http/proxy world, written the way StarlingMonkey's own
// examples are (a fetch-event handler, no ignareo SDK):
// - `GET /fetch?url=U`: fetches U with the standard `fetch` and answers `{"status": S,
//   "bytes": N}`, or 502 `{"error": "..."}` if the host refused or failed it;
// - anything else: echoes `{"method", "path", "headers", "body"}` as JSON, status 200.
addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname === '/fetch') {
    try {
      const answer = await fetch(url.searchParams.get('url'));
      const body = new Uint8Array(await answer.arrayBuffer());
      return json(200, { status: answer.status, bytes: body.length });
    } catch (error) {
      return json(502, { error: String(error) });
    }
  }
  const headers = {};
  for (const [name, value] of request.headers) headers[name] = value;
  return json(200, {
    method: request.method,
    path: url.pathname + url.search,
    headers,
    body: await request.text(),
  });
}

function json(status, value) {
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });
}
