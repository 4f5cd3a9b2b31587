"""This task and the host's other services: time, events, spawned tasks."""

import json

from componentize_py_types import Err
from wit_world.imports import context as _context
from wit_world.imports import events as _events
from wit_world.imports import timer as _timer

_LEVELS = {
    "trace": _events.Level.TRACE,
    "debug": _events.Level.DEBUG,
    "info": _events.Level.INFO,
    "warn": _events.Level.WARN,
    "warning": _events.Level.WARN,
    "error": _events.Level.ERROR,
}


def sleep(seconds):
    """Suspends the task for ``seconds`` (a float), holding no thread on the host."""
    _timer.sleep(max(0, round(seconds * 1000)))


def log(message, level="info"):
    """A log line callers see in the task's events (``trace``, ``debug``, ``info``, ``warn``,
    ``error``)."""
    try:
        wit_level = _LEVELS[level]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: one of {', '.join(_LEVELS)}") from None
    _events.log(wit_level, str(message))


def progress(done, total=None, message=None):
    """How far the task has got: ``done`` of ``total`` units (``None`` if unknown)."""
    _events.progress(int(done), None if total is None else int(total), message)


def emit(name, data=None):
    """An event of the task's own, ``data`` being any JSON value."""
    _events.emit(name, json.dumps(data, separators=(",", ":")))


def task_id():
    """This task's id, as the HTTP API reports it."""
    return _context.task_id()


def plugin_name():
    """The plugin this task runs as."""
    return _context.plugin_name()


class SpawnError(Exception):
    """The host refused to start a task: no such plugin, or not allowed (the manifest's
    ``spawn`` list, the submitting token, limits); the message says which."""


class JoinError(Exception):
    """A spawned task produced no output. ``kind`` is ``"invalid-input"`` or ``"failed"``
    (its own error), ``"aborted"`` (trapped, timed out, hit a limit) or ``"cancelled"``."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind


class Child:
    """A task started by this one. Dropping it detaches the task; it keeps running."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def id(self):
        return self._handle.id()

    def join(self):
        """Waits until the task ends and returns its output, parsed from JSON; raises
        :class:`JoinError` if it produced none."""
        try:
            output = self._handle.join()
        except Err as error:
            raise _join_error(error.value) from None
        return json.loads(output) if output else None


def spawn(plugin, input=None):
    """Starts a task of ``plugin`` with ``input`` (any JSON value), alongside this one."""
    try:
        handle = _context.spawn(plugin, json.dumps(input, separators=(",", ":")).encode())
    except Err as error:
        raise SpawnError(error.value.value) from None
    return Child(handle)


def _join_error(error):
    if isinstance(error, _context.JoinError_Task):
        kind = "invalid-input" if type(error.value).__name__.endswith("InvalidInput") else "failed"
        return JoinError(kind, error.value.value)
    if isinstance(error, _context.JoinError_Aborted):
        return JoinError("aborted", error.value)
    return JoinError("cancelled", "")
