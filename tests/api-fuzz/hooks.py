"""Schemathesis hooks for the API fuzz run: how to send `application/wasm` bodies.

Schemathesis has no serializer for that media type; an upload body is either the real `hello`
component (so that valid uploads reach a 2xx) or arbitrary bytes.
"""

import os

import schemathesis
from hypothesis import strategies as st

with open(os.environ["IGNAREO_FUZZ_COMPONENT"], "rb") as component:
    VALID_COMPONENT = component.read()

schemathesis.openapi.media_type("application/wasm", st.one_of(st.just(VALID_COMPONENT), st.binary()))
