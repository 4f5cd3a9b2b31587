"""Unmodified ``requests`` code in a task: every ``requests.Session`` (and so ``requests.get``
and friends) sends through the host, under the plugin's manifest like the SDK's own calls.

:func:`install` (called by :func:`ignareo.task` and as each run starts) makes a host adapter
the one new sessions mount for ``http://`` and ``https://``. Each session's adapter holds a
host session: cookies live in the host's jar (the ``Set-Cookie`` of every redirect hop
included, since the host follows redirects) and are sent with the session's later requests; a ``Cookie`` header a request sets itself (``cookies=``)
replaces them for that request. ``response.cookies`` shows what the final answer set.
"""

import sys

from componentize_py_types import Err
from wit_world.imports import http as _wit

from . import http as _http

# `requests.exceptions` for each error the host reports.
_EXCEPTIONS = {
    _http.Denied: "ConnectionError",
    _http.Timeout: "Timeout",
    _http.ConnectionError: "ConnectionError",
    _http.TooLarge: "RequestException",
    _http.InvalidRequest: "InvalidURL",
    _http.TooManyRedirects: "TooManyRedirects",
    _http.ProtocolError: "ConnectionError",
    _http.ProxyError: "ProxyError",
}


def install():
    """Makes every ``requests.Session`` created from now on send through the host, if the task
    has imported ``requests`` (at the top of its module, as usual). Looking for the package
    when the task does not use it would cost every task's memory the search's leftovers."""
    requests = sys.modules.get("requests")
    if requests is not None and not isinstance(requests.sessions.HTTPAdapter, _HostAdapterType):
        requests.sessions.HTTPAdapter = _host_adapter_class(requests)


class _HostAdapterType(type):
    """The type of the adapter classes :func:`install` makes."""


def _host_adapter_class(requests):
    """A ``requests`` transport adapter over the host's HTTP, for this ``requests``."""
    from requests.adapters import BaseAdapter

    class HostAdapter(BaseAdapter, metaclass=_HostAdapterType):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self._session = _wit.Session()

        def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
            return _send(requests, self._session, request, timeout, proxies)

        def close(self):
            self._session.__exit__(None, None, None)

    return HostAdapter


def _send(requests, session, request, timeout, proxies):
    from requests.utils import select_proxy

    wit_request = _wit.Request(
        method=request.method,
        url=request.url,
        headers=list(request.headers.items()),
        body=_body(request.body),
        timeout_ms=_timeout_ms(timeout),
        proxy=select_proxy(request.url, proxies or {}),
        retry=None,
    )
    try:
        answer = session.send(wit_request)
    except Err as error:
        raise _requests_error(requests, _http._exception(error.value), request) from None
    return _response(requests, request, answer)

def _body(body):
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if hasattr(body, "read"):
        return body.read()
    return b"".join(chunk.encode() if isinstance(chunk, str) else chunk for chunk in body)


def _timeout_ms(timeout):
    if isinstance(timeout, tuple):
        parts = [part for part in timeout if part is not None]
        timeout = sum(parts) if parts else None
    return None if timeout is None else max(1, round(timeout * 1000))


def _requests_error(requests, error, request):
    kind = getattr(requests.exceptions, _EXCEPTIONS[type(error)])
    return kind(str(error), request=request)


class _Answered:
    """What ``requests``' cookie code reads of a response: its headers as a message."""

    def __init__(self, headers):
        import http.client

        self.msg = http.client.HTTPMessage()
        for name, value in headers:
            self.msg[name] = value


class _Raw:
    """The response's body as a file, as ``response.raw`` is."""

    def __init__(self, body, headers):
        import io

        self._body = io.BytesIO(body)
        self._cookies_from = _Answered(headers)

    def read(self, *args):
        return self._body.read(*args)

    def close(self):
        self._body.close()


def _response(requests, request, answer):
    from requests.cookies import extract_cookies_to_jar
    from requests.structures import CaseInsensitiveDict
    from requests.utils import get_encoding_from_headers

    response = requests.Response()
    response.status_code = answer.status
    response.headers = CaseInsensitiveDict()
    for name, value in answer.headers:
        response.headers[name] = f"{response.headers[name]}, {value}" if name in response.headers else value
    response._content = answer.body
    response.url = answer.url
    response.request = request
    response.reason = _reason(answer.status)
    response.encoding = get_encoding_from_headers(response.headers)
    # Without `_original_response`, requests copies no cookie into the session's own jar:
    # the host's jar holds them and sends them once.
    response.raw = _Raw(answer.body, answer.headers)
    extract_cookies_to_jar(response.cookies, request, _WithOriginal(response.raw._cookies_from))
    return response


class _WithOriginal:
    def __init__(self, answered):
        self._original_response = answered


def _reason(status):
    import http.client

    return http.client.responses.get(status, "")
