"""MkDocs hook: fill the reference pages from the code (orion_cli.docgen).

A line ``<!-- generated: NAME -->`` in a page is replaced by ``GENERATORS[NAME]()`` at build
time, so the command-line, status, configuration and job-directory references are always the
code's own. An unknown NAME fails the build.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    from orion_cli.docgen import GENERATORS

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(fill, markdown)
