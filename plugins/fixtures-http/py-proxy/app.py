# world: http-proxy
"""An HTTP plugin of the standard wasi:http/proxy world, written the way componentize-py's own
examples are (its generated bindings, no ignareo SDK):
- `GET /fetch?url=U`: fetches U with wasi:http's outgoing handler and answers
  `{"status": S, "bytes": N}`, or 502 `{"error": "..."}` if the host refused or failed it;
- anything else: echoes `{"method", "path", "headers", "body"}` as JSON, status 200.
"""

import json
from urllib.parse import urlsplit, parse_qs

from wit_world import exports
from wit_world.imports import outgoing_handler, types
from componentize_py_types import Err, Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        target = request.path_with_query() or "/"
        parts = urlsplit(target)
        if parts.path == "/fetch":
            url = parse_qs(parts.query).get("url", [""])[0]
            try:
                status, body = fetch(url)
                respond(response_out, 200, {"status": status, "bytes": len(body)})
            except Exception as error:  # the host's refusal or a failed request
                respond(response_out, 502, {"error": describe(error)})
            return
        headers = {name: value.decode() for name, value in request.headers().entries()}
        body = read_body(request.consume())
        respond(response_out, 200, {
            "method": method_name(request.method()),
            "path": target,
            "headers": headers,
            "body": body.decode(errors="replace"),
        })


def fetch(url: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    request = types.OutgoingRequest(types.Fields())
    request.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    future = outgoing_handler.handle(request, None)
    future.subscribe().block()
    answer = future.get()
    response = unwrap(unwrap(answer))
    return response.status(), read_body(response.consume())


def unwrap(value):
    if isinstance(value, Ok):
        return value.value
    if isinstance(value, Err):
        raise RuntimeError(value.value)
    return value


def describe(error: Exception) -> str:
    cause = error.args[0] if error.args else error
    if isinstance(cause, Err):
        cause = cause.value
    return type(cause).__name__


def read_body(body) -> bytes:
    # A body's stream is its child: it goes first.
    with body:
        with body.stream() as stream:
            chunks = []
            while True:
                try:
                    chunks.append(stream.blocking_read(65536))
                except Err:
                    return b"".join(chunks)


def respond(response_out, status: int, value) -> None:
    data = json.dumps(value).encode()
    response = types.OutgoingResponse(types.Fields.from_list([("content-type", b"application/json")]))
    response.set_status_code(status)
    body = response.body()
    types.ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    for start in range(0, len(data), 4096):
        stream.blocking_write_and_flush(data[start:start + 4096])
    stream.__exit__(None, None, None)
    types.OutgoingBody.finish(body, None)


def method_name(method) -> str:
    if isinstance(method, types.Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()
