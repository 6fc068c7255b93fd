"""ASCII glyphs where the locale is not UTF-8, even after Python's own locale coercion."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fleet_tui.present.glyphs import choose_ascii, locale_is_utf8, to_ascii


@pytest.mark.parametrize(
    ("env", "utf8"),
    [
        ({"LANG": "C.UTF-8"}, True),
        ({"LANG": "en_US.utf8"}, True),
        ({"LC_ALL": "de_DE.UTF-8", "LANG": "C"}, True),
        ({"LANG": "C"}, False),
        ({}, False),
        ({"LANG": "en_US.ISO-8859-1"}, False),
        ({"LC_ALL": "C", "LC_CTYPE": "C.UTF-8", "LANG": "C.UTF-8"}, False),
        # what Python's PEP 538 coercion leaves in the environment of LANG=C, or of no locale
        ({"LANG": "C", "LC_CTYPE": "C.UTF-8"}, False),
        ({"LC_CTYPE": "C.UTF-8"}, False),
        # a real choice of the user's
        ({"LANG": "en_GB.UTF-8", "LC_CTYPE": "C.UTF-8"}, True),
    ],
)
def test_the_locale_decides(env: dict[str, str], utf8: bool) -> None:
    assert locale_is_utf8(env) is utf8
    assert choose_ascii("auto", env) is not utf8
    assert choose_ascii("unicode", env) is False
    assert choose_ascii("ascii", env) is True


@pytest.mark.parametrize("lang", [{"LANG": "C"}, {}])
def test_a_python_started_in_the_c_locale_draws_ascii(lang: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    code = "import os; from fleet_tui.present.glyphs import choose_ascii as c; print(c('auto', os.environ))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **lang},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"


def test_to_ascii_keeps_one_cell_per_glyph() -> None:
    assert to_ascii("● healthy ★ waiting ▲") == "+ healthy * waiting ^"
    assert to_ascii("café") == "caf?"
