"""Regexes compiled on first use: a module-level pattern that a command never uses costs nothing.

`ps`, `heartbeat` and the hooks start a fresh interpreter each time, and compiling the big
patterns of the stream sanitizer or of the inference rules at import cost them milliseconds for
nothing. `lazy_compile(globals(), NAME, pattern)` returns a stand-in for the pattern; its first
use compiles it and rebinds the module global NAME to the compiled pattern, so the module's own
functions pay nothing after that (they look NAME up in their globals on each call). A stand-in
that was imported elsewhere (`from m import NAME` before the first use) keeps working: it hands
out the compiled pattern's attributes.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any, cast


class _LazyPattern:
    __slots__ = ("_compiled", "_flags", "_name", "_namespace", "_pattern")

    def __init__(
        self, namespace: MutableMapping[str, Any], name: str, pattern: str, flags: int
    ) -> None:
        self._namespace = namespace
        self._name = name
        self._pattern = pattern
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    def compiled(self) -> re.Pattern[str]:
        found = self._compiled
        if found is None:
            found = self._compiled = re.compile(self._pattern, self._flags)
            if self._namespace.get(self._name) is self:
                self._namespace[self._name] = found
        return found

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.compiled(), attr)

    def __repr__(self) -> str:
        return f"lazy {self._pattern!r}"


def lazy_compile(
    namespace: MutableMapping[str, Any], name: str, pattern: str, flags: int = 0
) -> re.Pattern[str]:
    """A stand-in for `re.compile(pattern, flags)` held in `namespace[name]` (pass `globals()`
    and the name it is assigned to): compiled on first use, and then put in its place."""
    return cast("re.Pattern[str]", _LazyPattern(namespace, name, pattern, flags))
