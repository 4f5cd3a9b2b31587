"""Tasks for the ignareo host, in Python.

A task is a function from JSON to JSON, marked with :func:`task`::

    import ignareo

    @ignareo.task
    def run(input):
        page = ignareo.get(input["url"])
        page.raise_for_status()
        return {"status": page.status_code, "length": len(page.content)}

Everything a task does outside its own memory goes through the host, under the plugin's
manifest: HTTP (:class:`Session`, :func:`get` and friends, :func:`fetch_all`), time
(:func:`sleep`), events callers can watch (:func:`log`, :func:`progress`, :func:`emit`) and
other tasks (:func:`spawn`). Calls that wait hold no thread on the host: a sleeping or
fetching task costs its memory only. If the task imports ``requests`` (bundled with it), its
sessions send through the host too (see :mod:`ignareo.requests_adapter`): code written for
``requests`` runs unchanged.
"""

from ._task import InvalidInput, task
from .context import Child, JoinError, SpawnError, emit, log, plugin_name, progress, sleep, spawn, task_id
from .http import (
    ConnectionError,
    Denied,
    HTTPError,
    InvalidRequest,
    ProtocolError,
    ProxyError,
    Request,
    RequestException,
    Response,
    Retry,
    Session,
    Timeout,
    TooLarge,
    TooManyRedirects,
    delete,
    fetch_all,
    get,
    head,
    patch,
    post,
    put,
    request,
)

__all__ = [
    "Child",
    "ConnectionError",
    "Denied",
    "HTTPError",
    "InvalidInput",
    "InvalidRequest",
    "JoinError",
    "ProtocolError",
    "ProxyError",
    "Request",
    "RequestException",
    "Response",
    "Retry",
    "Session",
    "SpawnError",
    "Timeout",
    "TooLarge",
    "TooManyRedirects",
    "delete",
    "emit",
    "fetch_all",
    "get",
    "head",
    "log",
    "patch",
    "plugin_name",
    "post",
    "progress",
    "put",
    "request",
    "sleep",
    "spawn",
    "task",
    "task_id",
]
