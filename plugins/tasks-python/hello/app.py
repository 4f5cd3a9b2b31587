"""`hello`, in Python: any JSON value `v` → `{"hello": v}`. No I/O: the smallest possible task."""

import ignareo


@ignareo.task
def run(input):
    return {"hello": input}
