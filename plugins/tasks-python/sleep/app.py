"""`sleep`, in Python: `{"ms": N}` → sleeps N ms on the host (no thread held) →
`{"slept_ms": N}`."""

import ignareo


@ignareo.task
def run(input):
    ms = input.get("ms") if isinstance(input, dict) else None
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        raise ignareo.InvalidInput('expected {"ms": N}, N a whole number of milliseconds')
    ignareo.sleep(ms / 1000)
    return {"slept_ms": ms}
