"""`py-limits`: a Python task that reaches the host's limits on purpose. `{"kind": K, ...}`:
- `memory`: holds `mib` MiB (default 1,024) in a bytearray;
- `sleep`: sleeps `ms` milliseconds;
- `fetch`: GETs `url` (for a cancel or a deadline in the middle of a request)."""

import ignareo


@ignareo.task
def run(input):
    kind = input.get("kind") if isinstance(input, dict) else None
    if kind == "memory":
        hoard = bytearray(input.get("mib", 1024) << 20)
        return {"held": len(hoard)}
    if kind == "sleep":
        ignareo.sleep(input["ms"] / 1000)
        return {"slept_ms": input["ms"]}
    if kind == "fetch":
        return {"status": ignareo.get(input["url"]).status_code}
    raise ignareo.InvalidInput(f"unknown kind {kind!r}: memory, sleep or fetch")
