"""Outbound HTTP through the host, in the manner of ``requests``.

The host sends every request under the plugin's manifest (allowed hosts, the private-address
rule, politeness limits, proxies, size limits) and follows redirects itself. A
:class:`Session` keeps cookies (in the host, by the usual domain, path and expiry rules) and
default headers across requests; the module-level :func:`get`, :func:`post`, ... keep no
state. :func:`fetch_all` sends many requests at once on the host.
"""

import json as _json
from collections.abc import Mapping, MutableMapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from componentize_py_types import Err
from wit_world.imports import http as _wit


class RequestException(IOError):
    """A request that produced no usable response."""

    def __init__(self, message, response=None):
        super().__init__(message)
        self.response = response


class Denied(RequestException):
    """The destination (or proxy) is not allowed for this plugin."""


class Timeout(RequestException):
    """The request did not finish within its timeout."""


class ConnectionError(RequestException):  # noqa: A001 - the name `requests` uses
    """The connection could not be established (DNS, refused, TLS, reset)."""


class TooLarge(RequestException):
    """The response body exceeded the host's limit (``limit`` bytes)."""


class InvalidRequest(RequestException, ValueError):
    """The request is malformed: URL, method, header, proxy or retry policy."""


class TooManyRedirects(RequestException):
    """More redirects than the host allows."""


class ProtocolError(RequestException):
    """The connection broke, or the peer spoke invalid HTTP."""


class ProxyError(ConnectionError):
    """The proxy could not be reached, refused the credentials or the tunnel."""


class HTTPError(RequestException):
    """:meth:`Response.raise_for_status` on a 4xx or 5xx answer."""


_ERRORS = {
    _wit.Error_Denied: (Denied, "destination denied: {}"),
    _wit.Error_Timeout: (Timeout, "timed out: {}"),
    _wit.Error_Connect: (ConnectionError, "cannot connect: {}"),
    _wit.Error_TooLarge: (TooLarge, "the response body is larger than {} bytes"),
    _wit.Error_InvalidRequest: (InvalidRequest, "invalid request: {}"),
    _wit.Error_TooManyRedirects: (TooManyRedirects, "more than {} redirects"),
    _wit.Error_Protocol: (ProtocolError, "protocol error: {}"),
    _wit.Error_Proxy: (ProxyError, "proxy error: {}"),
}


def _exception(error):
    kind, template = _ERRORS[type(error)]
    return kind(template.format(error.value))


class Headers(MutableMapping):
    """Header names and values, names matched case-insensitively (as ``requests``'
    ``CaseInsensitiveDict``). A name sent twice reads as its values joined by ``", "``."""

    def __init__(self, items=()):
        self._items = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name):
        return self._items[name.lower()][1]

    def __setitem__(self, name, value):
        self._items[name.lower()] = (name, value)

    def __delitem__(self, name):
        del self._items[name.lower()]

    def __iter__(self):
        return (name for name, _ in self._items.values())

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return repr(dict(self.items()))


class Response:
    """A response, after redirects."""

    def __init__(self, wit_response):
        self.status_code = wit_response.status
        self.raw_headers = wit_response.headers
        self.headers = Headers(wit_response.headers)
        self.content = wit_response.body
        self.url = wit_response.url
        self.encoding = _charset(self.headers.get("content-type")) or "utf-8"

    @property
    def ok(self):
        return self.status_code < 400

    @property
    def text(self):
        """The body decoded by its ``charset`` (UTF-8 if none), undecodable bytes replaced."""
        return self.content.decode(self.encoding, errors="replace")

    def json(self):
        return _json.loads(self.content)

    def raise_for_status(self):
        """Raises :class:`HTTPError` for a 4xx or 5xx answer."""
        if self.status_code >= 400:
            side = "client" if self.status_code < 500 else "server"
            raise HTTPError(f"{self.status_code} {side} error for url: {self.url}", response=self)

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


def _charset(content_type):
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return None


class Retry:
    """When a request is tried again: ``attempts`` tries in all, waiting ``backoff`` seconds
    before the first retry and doubling up to ``max_backoff``; on ``statuses`` (429, 502,
    503 and 504 if none), and after connection failures if ``on_errors``. A method that is
    not idempotent (POST, PATCH) is retried only with ``any_method``."""

    def __init__(self, attempts=3, backoff=0.2, max_backoff=10.0, statuses=None, on_errors=True, any_method=False):
        self.policy = _wit.RetryPolicy(
            attempts=attempts,
            initial_backoff_ms=round(backoff * 1000),
            max_backoff_ms=round(max_backoff * 1000),
            statuses=None if statuses is None else list(statuses),
            retry_errors=on_errors,
            any_method=any_method,
        )


class Request:
    """One request, for :func:`fetch_all` (or :meth:`Session.send`). ``data`` is bytes, text
    or a form (a mapping, sent URL-encoded); ``json`` any JSON value; ``timeout`` seconds;
    ``proxy`` a proxy URL (it must be in the plugin's pool or allowed)."""

    def __init__(
        self,
        method,
        url,
        params=None,
        headers=None,
        data=None,
        json=None,
        timeout=None,
        proxy=None,
        retry=None,
    ):
        self.method = method.upper()
        self.url = _with_params(url, params)
        self.headers = Headers(headers or {})
        self.body = _body(data, json, self.headers)
        self.timeout = timeout
        self.proxy = proxy
        self.retry = retry

    def _wit(self, default_headers=None):
        headers = Headers(default_headers or {})
        headers.update(self.headers)
        return _wit.Request(
            method=self.method,
            url=self.url,
            headers=list(headers.items()),
            body=self.body,
            timeout_ms=None if self.timeout is None else max(1, round(self.timeout * 1000)),
            proxy=self.proxy,
            retry=None if self.retry is None else self.retry.policy,
        )


def _with_params(url, params):
    if not params:
        return url
    parts = urlsplit(url)
    query = urlencode(params, doseq=True)
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


def _body(data, json, headers):
    if json is not None:
        headers.setdefault("Content-Type", "application/json")
        return _json.dumps(json, separators=(",", ":")).encode()
    if data is None:
        return None
    if isinstance(data, Mapping) or (isinstance(data, list) and data and isinstance(data[0], tuple)):
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode(data, doseq=True).encode()
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


def _proxy_for(url, proxies):
    """A ``requests``-style ``proxies`` mapping (by scheme) or a proxy URL, for ``url``."""
    if proxies is None or isinstance(proxies, str):
        return proxies
    scheme = urlsplit(url).scheme
    return proxies.get(scheme) or proxies.get("all")


def _outcome(result):
    """A response for a sent request, raising the request's error."""
    try:
        return Response(result())
    except Err as error:
        raise _exception(error.value) from None


class Session:
    """Requests that share cookies (kept by the host), default ``headers`` (this mapping, sent
    with every request that does not set them), a ``proxy`` and a ``retry`` policy, like
    ``requests.Session``. A new session takes the next proxy of the plugin's pool, if its
    manifest names one. Use it as a context manager, or :meth:`close` it, to free it at once.
    """

    def __init__(self, headers=None, proxy=None, retry=None):
        self._handle = _wit.Session()
        self.headers = Headers(headers or {})
        if proxy is not None:
            self.set_proxy(proxy)
        if retry is not None:
            self.set_retry(retry)

    def set_proxy(self, proxy):
        """Sends this session's requests through ``proxy`` (``None``: directly)."""
        try:
            self._handle.set_proxy(proxy)
        except Err as error:
            raise _exception(error.value) from None

    def set_retry(self, retry):
        """Retries this session's requests by ``retry`` (``None``: not at all)."""
        try:
            self._handle.set_retry(None if retry is None else retry.policy)
        except Err as error:
            raise _exception(error.value) from None

    def request(self, method, url, proxies=None, **options):
        """Sends one request (the options of :class:`Request`; ``proxies`` as ``requests``
        takes them) and returns its :class:`Response`."""
        return self.send(Request(method, url, proxy=_proxy_for(url, proxies), **options))

    def send(self, request):
        return _outcome(lambda: self._handle.send(request._wit(self.headers)))

    def get(self, url, **options):
        return self.request("GET", url, **options)

    def head(self, url, **options):
        return self.request("HEAD", url, **options)

    def post(self, url, data=None, json=None, **options):
        return self.request("POST", url, data=data, json=json, **options)

    def put(self, url, data=None, **options):
        return self.request("PUT", url, data=data, **options)

    def patch(self, url, data=None, **options):
        return self.request("PATCH", url, data=data, **options)

    def delete(self, url, **options):
        return self.request("DELETE", url, **options)

    def fetch_all(self, requests, concurrency=None):
        """As :func:`fetch_all`, with this session's cookies and default headers."""
        wit_requests = [_as_request(r)._wit(self.headers) for r in requests]
        return _results(self._handle.fetch_all(wit_requests, concurrency))

    def cookies_for(self, url):
        """The ``Cookie`` header this session would send to ``url`` (empty if none)."""
        return self._handle.cookies_for(url)

    def close(self):
        self._handle.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _as_request(request):
    return Request("GET", request) if isinstance(request, str) else request


def _results(wit_results):
    results = []
    for result in wit_results:
        if isinstance(result, Err):
            results.append(_exception(result.value))
        else:
            results.append(Response(result.value))
    return results


def request(method, url, proxies=None, **options):
    """Sends one request with no cookie state (through the next proxy of the plugin's pool,
    if it has one)."""
    wit_request = Request(method, url, proxy=_proxy_for(url, proxies), **options)._wit()
    return _outcome(lambda: _wit.send(wit_request))


def get(url, **options):
    return request("GET", url, **options)


def head(url, **options):
    return request("HEAD", url, **options)


def post(url, data=None, json=None, **options):
    return request("POST", url, data=data, json=json, **options)


def put(url, data=None, **options):
    return request("PUT", url, data=data, **options)


def patch(url, data=None, **options):
    return request("PATCH", url, data=data, **options)


def delete(url, **options):
    return request("DELETE", url, **options)


def fetch_all(requests, concurrency=None):
    """Sends every request (a :class:`Request` or a URL to GET) at once on the host, at most
    ``concurrency`` at a time (the host's default if ``None``) and within each destination's
    politeness limits. Returns one result per request, in order: a :class:`Response`, or the
    :class:`RequestException` it ended with (not raised)."""
    wit_requests = [_as_request(r)._wit() for r in requests]
    return _results(_wit.fetch_all(wit_requests, concurrency))
