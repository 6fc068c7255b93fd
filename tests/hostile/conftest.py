"""The hostile-input suite: the adversarial probe's cases kept as regression tests (special files,
lone surrogates, YAML bombs, spoofed gateway rows, traversal names, poisoned batches, skewed
clocks). The fixtures of `tests/conftest.py` apply here too; this file puts `tests/` on the
import path so that `from conftest import ...` and `from factories import ...` work."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
