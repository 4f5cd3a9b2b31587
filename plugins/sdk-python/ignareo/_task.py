"""The task's entry point: :func:`task` makes a function the component's ``run`` export."""

import json
import sys
import traceback

from componentize_py_types import Err
try:
    from wit_world.imports.types import TaskError_Failed, TaskError_InvalidInput
except ImportError:
    # A world that imports wasi:http's `types` too (`task-http`) names each by its package.
    from wit_world.imports.ignareo_task_types import TaskError_Failed, TaskError_InvalidInput

from . import requests_adapter

# Frames of a failure's traceback kept in its message: where it happened, not the whole stack.
_FRAMES_KEPT = 8


class InvalidInput(Exception):
    """The task's input is not what it takes: the task ends with the kind ``invalid-input``
    (``run`` answers 422), the message being this exception's."""


def task(function):
    """Makes ``function`` the task: it is called with the input parsed from JSON (``None`` for
    an empty input) and returns what the task outputs, serialized to JSON (``bytes`` are
    returned as they are). :class:`InvalidInput` ends the task as ``invalid-input``; any
    other exception ends it as ``failed``, its message being the exception and where it was
    raised. ``requests``, if the task imports it, sends through the host."""
    module = sys.modules[function.__module__]
    requests_adapter.install()

    class WitWorld:
        def run(self, input: bytes) -> bytes:
            requests_adapter.install()
            try:
                value = json.loads(input) if input else None
            except ValueError as error:
                raise Err(TaskError_InvalidInput(f"the input is not JSON: {error}"))
            try:
                output = function(value)
            except InvalidInput as error:
                raise Err(TaskError_InvalidInput(str(error)))
            except Exception as error:
                raise Err(TaskError_Failed(_describe(error)))
            if isinstance(output, (bytes, bytearray)):
                return bytes(output)
            try:
                return json.dumps(output, separators=(",", ":"), ensure_ascii=False).encode()
            except (TypeError, ValueError) as error:
                raise Err(TaskError_Failed(f"the task's output is not JSON: {error}"))

    # componentize-py takes the export from the application module's `WitWorld`.
    module.WitWorld = WitWorld
    return function


def _describe(error):
    """The exception first, then where the task's own code raised it (the SDK's frames left
    out)."""
    head = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if "/ignareo/" not in frame.filename]
    if not frames:
        return head
    return head + "\n" + "".join(traceback.format_list(frames[-_FRAMES_KEPT:])).rstrip()
