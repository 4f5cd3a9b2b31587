"""Small helpers for pages a crawler fetches."""

import html as _html
import re

_TITLE = re.compile(r"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def title(page):
    """The text of the page's first ``<title>`` element, whitespace collapsed and entities
    decoded; ``None`` if the page has none."""
    found = _TITLE.search(page)
    if found is None:
        return None
    return _html.unescape(" ".join(found.group(1).split()))
