"""The command line builds only the sub-parser of the verb asked for (issue 16, start-up), and
says exactly what the whole parser says: the same namespace, the same help, the same errors.

Each argv is parsed twice, by the whole parser (every verb, as before) and by the one `main`
builds for it (`build_parser(_named_verb(argv))`); stdout, stderr, the exit status and the
parsed namespace must be the same.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_tui.cli import main as cli

REPO = Path(__file__).resolve().parent.parent

ARGVS = [
    [],
    ["--help"],
    ["-h"],
    ["--version"],
    ["ps"],
    ["ps", "--json"],
    ["ps", "--json", "--all", "--tenant", "acme", "--host", "h1"],
    ["ps", "--help"],
    ["ps", "-h"],
    ["ps", "--bogus"],
    ["ps", "--tenant"],
    ["ps", "extra"],
    ["--roster", "/tmp/r.yaml", "ps", "--json"],
    ["--roster=/tmp/r.yaml", "--state-dir", "/tmp/s", "ps"],
    ["--heartbeat-timeout", "5", "ps", "--heartbeat-timeout", "7"],
    ["--heartbeat-timeout", "0", "ps"],
    ["--insecure", "--gateway", "http://127.0.0.1:1", "ps", "--json"],
    ["--gateway=http://127.0.0.1:1", "--token-file", "/tmp/t", "ps"],
    ["--help", "ps"],
    ["--version", "ps"],
    ["--ros", "/tmp/r.yaml", "ps"],
    ["--roster", "-x", "ps"],
    ["--roster"],
    ["--roster", "ps"],
    ["--insecure=1", "ps"],
    ["bogus"],
    ["pss", "--json"],
    ["p"],
    ["-x"],
    ["--", "ps"],
    ["heartbeat", "a1", "--state", "busy", "--detail", "d"],
    ["heartbeat", "a1", "--state", "sleeping"],
    ["heartbeat", "--help"],
    ["probe", "a1", "--timeout", "2"],
    ["probe", "a1", "--timeout", "-1"],
    ["send", "a1", "hello", "--verify"],
    ["send", "--help"],
    ["watch", "a1"],
    ["attach", "a1", "--yes"],
    ["stub", "a1", "--interval", "1", "--waiting"],
    ["demo"],
    ["demo", "down"],
    ["demo", "sideways"],
    ["demo", "--agents", "7", "--no-ui"],
    ["tui", "--gateway", "http://127.0.0.1:1"],
    ["tui", "--help"],
    ["hook", "claude"],
    ["hook", "--help"],
    ["hook", "nonesuch"],
    ["statusline", "--account", "a"],
    ["install-hooks", "--help"],
    ["usage", "--help"],
    ["usage"],
    ["budget", "--help"],
    ["gateway", "--help"],
    ["gateway", "token", "list", "--help"],
    ["gateway", "nonesuch"],
    ["publish", "--help"],
    ["alerts", "--help"],
    ["alerts", "list"],
    ["alerts", "test", "--help"],
]


def _parse(parser_verb: str | None, argv: list[str]) -> tuple[int | None, str, str, str]:
    """Exit status (None when parsing succeeded), stdout, stderr, and the namespace."""
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    ns = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        parser = cli.build_parser(parser_verb)
        try:
            ns = repr(sorted(vars(parser.parse_args(argv)).items()))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else -1
    return code, out.getvalue(), err.getvalue(), ns


@pytest.mark.parametrize("argv", ARGVS, ids=lambda a: " ".join(a) or "(none)")
def test_the_parser_of_one_verb_says_what_the_whole_parser_says(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    whole = _parse(None, argv)
    verb = cli._named_verb(argv)
    assert _parse(verb, argv) == whole


def test_a_named_verb_is_recognised_only_when_sure() -> None:
    assert cli._named_verb(["ps", "--json"]) == "ps"
    assert cli._named_verb(["--roster", "r.yaml", "--insecure", "alerts"]) == "alerts"
    assert cli._named_verb(["--state-dir=/s", "hook", "claude"]) == "hook"
    for unsure in ([], ["--help", "ps"], ["--ros", "r", "ps"], ["--roster", "-r", "ps"], ["pss"]):
        assert cli._named_verb(unsure) is None


def test_the_verbs_of_the_extension_modules_are_the_ones_named_in_main() -> None:
    named: dict[str, set[str]] = {}
    for verb, module in cli.EXTENSION_VERBS.items():
        named.setdefault(module, set()).add(verb)
    for module, verbs in named.items():
        assert set(importlib.import_module(module).VERBS) == verbs, module
    sub = next(a for a in cli.build_parser()._actions if a.dest == "verb")
    assert set(sub.choices) == set(cli.CORE_VERBS) | set(cli.EXTENSION_VERBS)
    assert set(cli.VERBS) - {None} == set(cli.CORE_VERBS)


def test_ps_does_not_import_the_other_verbs_modules() -> None:
    code = (
        "import sys\n"
        "from fleet_tui.cli import main as cli\n"
        "cli.build_parser(cli._named_verb(['ps', '--json'])).parse_args(['ps', '--json'])\n"
        "print(sorted(m for m in cli.EXTENSIONS if m in sys.modules))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert res.stdout.strip() == "[]"
