# world: task-http
"""A task that fetches with wasi:http's own client, as a Python wasi:http library does
(componentize-py's generated bindings for the `task-http` world): `{"url": U}` →
`{"status": S, "bytes": N}`; a request the host refuses or fails ends the task with the
wasi:http error's name."""

from urllib.parse import urlsplit

import ignareo
from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler
from wit_world.imports import wasi_http_types as types


@ignareo.task
def run(input):
    if not isinstance(input, dict) or not isinstance(input.get("url"), str):
        raise ignareo.InvalidInput('expected {"url": "..."}')
    parts = urlsplit(input["url"])
    request = types.OutgoingRequest(types.Fields())
    request.set_scheme(types.Scheme_Https() if parts.scheme == "https" else types.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path + (f"?{parts.query}" if parts.query else ""))
    future = outgoing_handler.handle(request, None)
    with future.subscribe() as ready:
        ready.block()
    answer = future.get()
    response = unwrap(unwrap(answer))
    with response.consume() as body:
        with body.stream() as stream:
            received = 0
            while True:
                try:
                    received += len(stream.blocking_read(65536))
                except Err:
                    break
    return {"status": response.status(), "bytes": received}


def unwrap(value):
    if isinstance(value, Ok):
        return value.value
    if isinstance(value, Err):
        raise RuntimeError(f"wasi:http: {type(value.value).__name__}")
    return value
