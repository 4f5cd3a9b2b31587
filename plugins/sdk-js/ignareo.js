// Tasks for the ignareo host, in JavaScript (an ES module for componentize-js).
//
//     import { task, get } from 'ignareo';
//
//     export const run = task((input) => {
//       const page = get(input.url);
//       return { status: page.status, length: page.bytes().length };
//     });
//
// Every call that leaves the task goes through the host under the plugin's manifest. Calls
// are synchronous: a waiting task is suspended by the host, holding no thread, so there is
// nothing to `await`. The standard `fetch` is the engine's own, over wasi:http, which the host
// sends under the same manifest.

import * as wit from 'ignareo:task/http@0.2.0';
import * as events from 'ignareo:task/events@0.2.0';
import * as timer from 'ignareo:task/timer@0.2.0';
import * as context from 'ignareo:task/context@0.2.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// --- the task -------------------------------------------------------------------------------

/** Input the task does not take: ends it as `invalid-input` (422 from `run`). */
export class InvalidInput extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidInput';
  }
}

/**
 * Makes `fn` the task's `run` export: `export const run = task(fn)`. `fn` gets the input
 * parsed from JSON (`null` if empty) and returns what the task outputs, serialized to JSON (a
 * `Uint8Array` is returned as it is); it may be `async`. `InvalidInput` ends the task as
 * `invalid-input`, any other exception as `failed`, with its message and stack.
 */
export function task(fn) {
  return function run(input) {
    let value;
    try {
      value = input.length ? JSON.parse(decoder.decode(input)) : null;
    } catch (error) {
      throw { tag: 'invalid-input', val: `the input is not JSON: ${error.message}` };
    }
    const finish = (output) => {
      if (output instanceof Uint8Array) return output;
      const text = JSON.stringify(output === undefined ? null : output);
      return encoder.encode(text);
    };
    const fail = (error) => {
      if (error instanceof InvalidInput) throw { tag: 'invalid-input', val: error.message };
      throw { tag: 'failed', val: describe(error) };
    };
    try {
      const output = fn(value);
      return output instanceof Promise ? output.then(finish, fail) : finish(output);
    } catch (error) {
      return fail(error);
    }
  };
}

function describe(error) {
  if (error instanceof Error) {
    const stack = (error.stack || '').trim();
    return stack ? `${error.name}: ${error.message}\n${stack}` : `${error.name}: ${error.message}`;
  }
  return String(error);
}

// --- context: time, events, other tasks -----------------------------------------------------

/** Suspends the task for `ms` milliseconds, holding no thread on the host. */
export function sleep(ms) {
  timer.sleep(BigInt(Math.max(0, Math.round(ms))));
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error']);

/** A log line callers see in the task's events. */
export function log(message, level = 'info') {
  if (!LEVELS.has(level)) throw new RangeError(`unknown log level ${level}: one of ${[...LEVELS].join(', ')}`);
  events.log(level, String(message));
}

/** How far the task has got: `done` of `total` units (`undefined` if unknown). */
export function progress(done, total, message) {
  events.progress(BigInt(done), total === undefined || total === null ? undefined : BigInt(total), message);
}

/** An event of the task's own, `data` being any JSON value. */
export function emit(name, data = null) {
  events.emit(name, JSON.stringify(data));
}

export function taskId() {
  return context.taskId();
}

export function pluginName() {
  return context.pluginName();
}

/** The host refused to start a task (no such plugin, not allowed, limits). */
export class SpawnError extends Error {}

/** A spawned task produced no output; `kind` is `invalid-input`, `failed`, `aborted` or `cancelled`. */
export class JoinError extends Error {
  constructor(kind, message) {
    super(message ? `${kind}: ${message}` : kind);
    this.kind = kind;
  }
}

/** A task started by this one. */
export class Child {
  #handle;
  constructor(handle) {
    this.#handle = handle;
  }
  get id() {
    return this.#handle.id();
  }
  /** Waits until the task ends and returns its output parsed from JSON. */
  join() {
    let output;
    try {
      output = this.#handle.join();
    } catch (error) {
      throw joinError(variant(error));
    }
    return output.length ? JSON.parse(decoder.decode(output)) : null;
  }
}

/** Starts a task of `plugin` with `input` (any JSON value), alongside this one. */
export function spawn(plugin, input = null) {
  try {
    return new Child(context.spawn(plugin, encoder.encode(JSON.stringify(input))));
  } catch (error) {
    throw new SpawnError(variant(error).val);
  }
}

function joinError(error) {
  if (error.tag === 'task') return new JoinError(error.val.tag, error.val.val);
  if (error.tag === 'aborted') return new JoinError('aborted', error.val);
  return new JoinError('cancelled', '');
}

// A variant the host returned as an error: componentize-js throws it, wrapped or as it is.
function variant(error) {
  return error && error.payload !== undefined ? error.payload : error;
}

// --- HTTP -----------------------------------------------------------------------------------

/** A request that produced no usable response; `kind` says why (as the host's errors do). */
export class HttpError extends Error {
  constructor(kind, message, response) {
    super(message);
    this.name = 'HttpError';
    this.kind = kind;
    this.response = response;
  }
}

const MESSAGES = {
  denied: (v) => `destination denied: ${v}`,
  timeout: (v) => `timed out: ${v}`,
  connect: (v) => `cannot connect: ${v}`,
  'too-large': (v) => `the response body is larger than ${v} bytes`,
  'invalid-request': (v) => `invalid request: ${v}`,
  'too-many-redirects': (v) => `more than ${v} redirects`,
  protocol: (v) => `protocol error: ${v}`,
  proxy: (v) => `proxy error: ${v}`,
};

function httpError(error) {
  const { tag, val } = variant(error);
  const message = MESSAGES[tag];
  return message ? new HttpError(tag, message(val)) : error;
}

/** A response, after redirects. */
export class Response {
  #body;
  constructor(answer) {
    this.status = answer.status;
    this.url = answer.url;
    this.rawHeaders = answer.headers;
    this.headers = new Map();
    for (const [name, value] of answer.headers) {
      const key = name.toLowerCase();
      this.headers.set(key, this.headers.has(key) ? `${this.headers.get(key)}, ${value}` : value);
    }
    this.#body = answer.body;
  }
  get ok() {
    return this.status < 400;
  }
  bytes() {
    return this.#body;
  }
  text() {
    return decoder.decode(this.#body);
  }
  json() {
    return JSON.parse(this.text());
  }
  /** Throws an `HttpError` (kind `status`) for a 4xx or 5xx answer; returns the response. */
  raiseForStatus() {
    if (this.status >= 400) {
      const side = this.status < 500 ? 'client' : 'server';
      throw new HttpError('status', `${this.status} ${side} error for url: ${this.url}`, this);
    }
    return this;
  }
}

/**
 * When a request is tried again: `attempts` in all, waiting `backoffMs` before the first retry
 * and doubling up to `maxBackoffMs`; on `statuses` (429, 502, 503, 504 if none), after
 * connection failures if `onErrors`; POST and PATCH only with `anyMethod`.
 */
export function retry({ attempts = 3, backoffMs = 200, maxBackoffMs = 10000, statuses, onErrors = true, anyMethod = false } = {}) {
  return {
    attempts,
    initialBackoffMs: backoffMs,
    maxBackoffMs,
    statuses,
    retryErrors: onErrors,
    anyMethod,
  };
}

/**
 * One request, as `fetchAll` and `Session#send` take it. Options: `method`, `headers` (an
 * object, a `Map` or pairs), `body` (a string or bytes), `json` (any JSON value), `form` (an
 * object, sent URL-encoded), `params` (added to the query), `timeoutMs`, `proxy`, `retry`.
 */
export function request(url, options = {}) {
  const headers = pairs(options.headers);
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    setDefault(headers, 'content-type', 'application/json');
  } else if (options.form !== undefined) {
    body = new URLSearchParams(options.form).toString();
    setDefault(headers, 'content-type', 'application/x-www-form-urlencoded');
  }
  return {
    method: (options.method || 'GET').toUpperCase(),
    url: withParams(url, options.params),
    headers,
    body: body === undefined || body === null ? undefined : typeof body === 'string' ? encoder.encode(body) : new Uint8Array(body),
    timeoutMs: options.timeoutMs,
    proxy: options.proxy,
    retry: options.retry,
  };
}

// Header pairs from pairs, a `Map`, anything with `entries()` (a `Headers`), or an object.
function pairs(headers) {
  if (!headers) return [];
  const entries = Array.isArray(headers)
    ? headers
    : typeof headers.entries === 'function'
      ? [...headers.entries()]
      : Object.entries(headers);
  return entries.map(([name, value]) => [String(name), String(value)]);
}

function setDefault(headers, name, value) {
  if (!headers.some(([n]) => n.toLowerCase() === name)) headers.push([name, value]);
}

function withParams(url, params) {
  if (!params) return url;
  const query = new URLSearchParams(params).toString();
  return query ? `${url}${url.includes('?') ? '&' : '?'}${query}` : url;
}

function sendWith(sender, prepared) {
  try {
    return new Response(sender(prepared));
  } catch (error) {
    throw httpError(error);
  }
}

function results(answers) {
  return answers.map((result) => (result.tag === 'err' ? httpError(result.val) : new Response(result.val)));
}

/**
 * Requests that share cookies (kept by the host), default headers, a proxy and a retry
 * policy, like a browser tab. A new session takes the next proxy of the plugin's pool.
 */
export class Session {
  #handle = new wit.Session();

  /** Adds a header to every later request of this session that does not set it itself. */
  setHeader(name, value) {
    this.#handle.setDefaultHeader(name, String(value));
    return this;
  }
  /** Sends this session's requests through `proxy` (`undefined`: directly). */
  setProxy(proxy) {
    try {
      this.#handle.setProxy(proxy);
    } catch (error) {
      throw httpError(error);
    }
    return this;
  }
  /** Retries this session's requests by `policy` (from `retry()`; `undefined`: not at all). */
  setRetry(policy) {
    try {
      this.#handle.setRetry(policy);
    } catch (error) {
      throw httpError(error);
    }
    return this;
  }
  send(prepared) {
    return sendWith((r) => this.#handle.send(r), prepared);
  }
  request(url, options) {
    return this.send(request(url, options));
  }
  get(url, options = {}) {
    return this.request(url, { ...options, method: 'GET' });
  }
  post(url, options = {}) {
    return this.request(url, { ...options, method: 'POST' });
  }
  put(url, options = {}) {
    return this.request(url, { ...options, method: 'PUT' });
  }
  delete(url, options = {}) {
    return this.request(url, { ...options, method: 'DELETE' });
  }
  /** As `fetchAll`, with this session's cookies and default headers. */
  fetchAll(requests, concurrency) {
    return results(this.#handle.fetchAll(requests.map(prepare), concurrency));
  }
  /** The `Cookie` header this session would send to `url` ('' if none). */
  cookiesFor(url) {
    return this.#handle.cookiesFor(url);
  }
}

function prepare(item) {
  return typeof item === 'string' ? request(item) : item;
}

/** Sends one request with no cookie state (through the next proxy of the plugin's pool, if any). */
export function send(prepared) {
  return sendWith(wit.send, prepared);
}

export function get(url, options = {}) {
  return send(request(url, { ...options, method: 'GET' }));
}

export function post(url, options = {}) {
  return send(request(url, { ...options, method: 'POST' }));
}

/**
 * Sends every request (from `request()`, or a URL to GET) at once on the host, at most
 * `concurrency` at a time (the host's default if undefined), within each destination's
 * politeness limits. One result per request, in order: a `Response`, or the `HttpError` it
 * ended with (not thrown).
 */
export function fetchAll(requests, concurrency) {
  return results(wit.fetchAll(requests.map(prepare), concurrency));
}

// --- pages ----------------------------------------------------------------------------------

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/**
 * The text of the page's first `<title>` element, whitespace collapsed and entities decoded;
 * `null` if the page has none.
 */
export function title(html) {
  const found = /<title[^>]*>([\s\S]*?)<\/title/i.exec(html);
  if (!found) return null;
  const collapsed = found[1].split(/\s+/).filter(Boolean).join(' ');
  return collapsed.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name) => {
    if (name[0] !== '#') return ENTITIES[name] ?? whole;
    const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}
