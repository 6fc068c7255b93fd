"""The `fleet-tui alerts` verbs, run as subprocesses: `alerts run` against real tmux sessions, real
spool heartbeats (`fleet-tui heartbeat`) and a real local HTTP receiver; `alerts test`, `list`,
`silence`.

One tmux server (agents running `sleep infinity`) is shared by the module; each test has its own
state dir (spool, episodes, outbox, audit), alerts file and agent names, so tests do not see each
other's heartbeats or episodes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, FleetEnv, wait_until

from fleet_tui.sources.alerts import load_alerts

pytestmark = pytest.mark.tmux

SOCK = "mosaic-fleet"
AGENTS = ("fire1", "again1", "down1", "quiet1", "loud1", "list1", "lease1")
SECRET_PATH = "/hooks/s3cr3t-path-TOKEN"
STARTED = "alerts run: every"
_n = itertools.count()


# -- a real HTTP receiver ------------------------------------------------------------------------


class Receiver:
    """A threaded HTTP server on loopback recording every POST; `status` is what it answers.
    `stop()` closes the port (a receiver that is down); `start()` opens it again, same port."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if outer.status == 200:
                    outer.posts.append((self.path, json.loads(raw)))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{SECRET_PATH}"

    def bodies(self, agent: str, status: str | None = None) -> list[dict[str, Any]]:
        return [b for _p, b in self.posts if b["agent"] == agent and status in (None, b["status"])]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


# -- the world -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(module_env: FleetEnv) -> FleetEnv:
    module_env.write_roster([{"name": n, "role": "coder"} for n in AGENTS])
    for name in AGENTS:
        module_env.start(SOCK, name, ["sleep", "infinity"])
    return module_env


class Case:
    """One test's own state dir and alerts file in the shared world."""

    def __init__(self, env: FleetEnv) -> None:
        self.env = env
        self.dir = env.base / f"case{next(_n)}"
        self.state = self.dir / "state"
        self.alerts_file = self.dir / "alerts.yaml"
        self.dir.mkdir()
        self.runs: list[Run] = []

    def write_alerts(self, url: str | None = None, *, text: str | None = None) -> Path:
        if text is None:
            text = (
                "version: 1\n"
                "rules:\n"
                "  - name: needs-you\n"
                "    when: {state: [waiting_input, blocked]}\n"
                "    to: [terminal, ops]\n"
                "channels:\n"
                f'  - {{name: ops, type: webhook, url: "{url}"}}\n'
            )
        self.alerts_file.write_text(text)
        return self.alerts_file

    def cli(self, *args: str, timeout: float = 30.0) -> CliResult:
        return self.env.cli(*args, "--state-dir", str(self.state), timeout=timeout)

    def alerts(self, *args: str) -> CliResult:
        return self.cli("alerts", *args, "--alerts", str(self.alerts_file))

    def beat(self, name: str, state: str, detail: str | None = None) -> None:
        extra = ["--detail", detail] if detail else []
        res = self.cli("heartbeat", name, "--state", state, "--interval", "120", *extra)
        assert res.rc == 0, res

    def run(self, *extra: str, env: dict[str, str] | None = None) -> Run:
        r = Run(self, extra, env or {})
        self.runs.append(r)
        return r

    def audit(self) -> list[dict[str, Any]]:
        path = self.state / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Run:
    """`fleet-tui alerts run --every 0.5` in the background, stderr to a file."""

    def __init__(self, case: Case, extra: tuple[str, ...], env: dict[str, str]) -> None:
        self.log = case.dir / f"run{next(_n)}.err"
        argv = [sys.executable, "-m", "fleet_tui", "alerts", "run", "--every", "0.5"]
        argv += ["--alerts", str(case.alerts_file), "--state-dir", str(case.state), *extra]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                argv,
                env={**case.env.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=str(case.dir),
            )
        self.wait_for(STARTED)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        def seen() -> str | None:
            out = self.stderr()
            if text in out:
                return out
            assert self.proc.poll() is None, f"alerts run exited {self.proc.returncode}: {out}"
            return None

        return wait_until(seen, timeout=timeout, message=f"'{text}' on stderr")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture
def case(fleet: FleetEnv) -> Iterator[Case]:
    c = Case(fleet)
    try:
        yield c
    finally:
        for r in c.runs:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()


def _one_line(res: CliResult) -> str:
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


# -- alerts run ----------------------------------------------------------------------------------


def test_run_fires_then_resolves_and_audits(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    run = case.run()
    case.beat("fire1", "waiting_input", "may I push to main?")
    wait_until(lambda: receiver.bodies("fire1", "firing"), timeout=20, message="firing POST")
    path, body = receiver.posts[0]
    assert path == SECRET_PATH
    assert body["schema"] == "mosaic.fleet.alert/v1"
    assert (body["rule"], body["agent"], body["state"]) == ("needs-you", "fire1", "waiting_input")
    assert (body["tenant_id"], body["host"]) == ("acme", "h1")
    assert body["detail"] == "may I push to main?"

    case.beat("fire1", "busy")
    wait_until(lambda: receiver.bodies("fire1", "resolved"), timeout=20, message="resolved POST")
    assert run.stop() == 0
    assert len(receiver.bodies("fire1", "firing")) == 1  # one episode, one firing
    err = run.stderr()
    for word in ("fired: needs-you fire1", "resolved: needs-you fire1", "delivered:", "stopping"):
        assert word in err, err
    assert "Traceback" not in err
    assert SECRET_PATH not in err and "s3cr3t" not in err  # the URL's path is a secret
    assert f"127.0.0.1:{receiver.port}" in err  # the channel is named by its origin
    audit = [a for a in case.audit() if a["action"] == "alert"]
    assert [(a["agent"], a["outcome"]) for a in audit] == [
        ("fire1", "firing"),
        ("fire1", "resolved"),
    ]
    assert all(a["surface"] == "alerts" and a["detail"] == "needs-you -> ops" for a in audit)


def test_restart_mid_episode_sends_nothing_again(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    first = case.run()
    case.beat("again1", "waiting_input", "which branch?")
    wait_until(lambda: receiver.bodies("again1", "firing"), timeout=20, message="firing POST")
    assert first.stop(signal.SIGINT) == 0  # Ctrl-C: the step finishes, exit 0
    assert "Traceback" not in first.stderr() and "stopping" in first.stderr()

    second = case.run()
    # the restarted evaluator reads the same waiting heartbeat for several polls...
    time.sleep(2.5)
    assert len(receiver.bodies("again1")) == 1, receiver.posts
    # ...and still knows the episode: it resolves it
    case.beat("again1", "busy")
    wait_until(lambda: receiver.bodies("again1", "resolved"), timeout=20, message="resolved")
    assert second.stop() == 0
    assert [b["status"] for b in receiver.bodies("again1")] == ["firing", "resolved"]


def test_receiver_down_then_up_nothing_lost(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    receiver.stop()  # nobody listens on its port
    run = case.run()
    case.beat("down1", "waiting_input", "stuck")
    run.wait_for("not delivered")
    listed = json.loads(case.alerts("list", "--json").stdout)
    assert listed["outbox"]["pending"] == 1
    receiver.start()  # the same port again
    wait_until(lambda: receiver.bodies("down1", "firing"), timeout=30, message="late delivery")
    assert run.stop() == 0
    assert len(receiver.bodies("down1", "firing")) == 1
    assert json.loads(case.alerts("list", "--json").stdout)["outbox"]["pending"] == 0
    assert SECRET_PATH not in run.stderr()


def test_changed_alerts_file_invalid_keeps_last_good_rules(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    run = case.run()
    case.beat("loud1", "waiting_input")
    wait_until(lambda: receiver.bodies("loud1", "firing"), timeout=20, message="firing POST")
    good = case.alerts_file.read_text()
    case.write_alerts(text=good.replace("to: [terminal, ops]", "to: [terminal, nowhere]"))
    err = run.wait_for("keeping the last good rules")
    line = next(x for x in err.splitlines() if "keeping the last good rules" in x)
    assert f"{case.alerts_file}:5:" in line, line
    case.beat("loud1", "busy")
    wait_until(lambda: receiver.bodies("loud1", "resolved"), timeout=20, message="resolved")
    assert run.stop() == 0


def test_silenced_agent_gets_no_post(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    res = case.alerts("silence", "needs-you", "quiet*", "--for", "2h", "--reason", "on leave")
    assert res.rc == 0, res
    assert "needs-you on quiet* until" in res.stdout
    run = case.run()
    case.beat("quiet1", "waiting_input")
    case.beat("loud1", "waiting_input")  # written after quiet1's: its POST means both were seen
    wait_until(lambda: receiver.bodies("loud1", "firing"), timeout=20, message="loud1's POST")
    time.sleep(1.0)
    assert receiver.bodies("quiet1") == []
    assert run.stop() == 0
    listed = json.loads(case.alerts("list", "--json").stdout)
    quiet = [e for e in listed["episodes"] if e["agent"] == "quiet1"]
    assert quiet and quiet[0]["silenced"] is True


def test_run_refuses_an_invalid_or_missing_file(case: Case) -> None:
    case.write_alerts(text="version: 1\nrules:\n  - name: x\n    when: {state: [napping]}\n")
    res = case.cli("alerts", "run", "--once", "--alerts", str(case.alerts_file))
    assert res.rc == 2
    assert f"{case.alerts_file}:4:" in _one_line(res)

    res = case.cli("alerts", "run", "--once")  # the default file does not exist
    assert res.rc == 2
    assert "nothing to deliver" in _one_line(res)


class FakeGateway:
    """The gateway's alert-lease route (and a /snapshot that is unavailable): `other` holds the
    tenant's lease while set; every holder that asked and every release are recorded."""

    PREFIX = "/api/fleet/v1"

    def __init__(self) -> None:
        self.other: str | None = None
        self.asked: list[str] = []
        self.released: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                data: dict[str, Any] = json.loads(self.rfile.read(n) or b"{}")
                return data

            def do_POST(self) -> None:
                holder = str(self._body()["holder"])
                outer.asked.append(holder)
                until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
                who = outer.other or holder
                doc = {"holder": who, "held": who == holder, "expires_at": until}
                self._answer(200, {**doc, "expires_in_s": 30})

            def do_DELETE(self) -> None:
                outer.released.append(str(self._body()["holder"]))
                self._answer(200, {"released": True})

            def do_GET(self) -> None:
                self._answer(503, {"error": {"code": "unavailable", "message": "not here"}})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_with_gateway_one_evaluator_per_tenant(case: Case, receiver: Receiver) -> None:
    gw = FakeGateway()
    try:
        case.write_alerts(receiver.url)
        gw.other = "other-host:42:\x1b[31mab"  # remote text: shown sanitized
        run = case.run(
            "--gateway", gw.url, "--insecure", env={"MOSAIC_FLEET_GATEWAY_TOKEN": "t0k3n-xyz"}
        )
        case.beat("lease1", "waiting_input", "deploy?")
        err = run.wait_for("standing by:")
        wait_until(lambda: len(gw.asked) >= 3, timeout=20, message="lease renewals")
        assert receiver.bodies("lease1") == []  # the other evaluator alerts this tenant
        gw.other = None  # it is gone: the lease is ours at the next renewal
        wait_until(lambda: receiver.bodies("lease1", "firing"), timeout=20, message="firing")
        assert run.stop() == 0
        err = run.stderr()
        assert err.count("standing by:") == 1, err  # said once, not per poll
        line = next(x for x in err.splitlines() if "standing by:" in x)
        assert "other-host:42:" in line and "\x1b" not in line and "evaluates tenant acme" in line
        mine = gw.asked[-1]
        _host, pid, tag = mine.rsplit(":", 2)
        assert int(pid) == run.proc.pid and len(tag) == 8
        assert gw.released == [mine]  # released on exit
        assert "t0k3n-xyz" not in err
    finally:
        gw.close()


# -- alerts test, list, silence ------------------------------------------------------------------


def test_alerts_test_ok_failing_unknown(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    res = case.alerts("test", "ops")
    assert res.rc == 0, res
    assert res.stdout.strip() == f"delivered to ops (webhook, http://127.0.0.1:{receiver.port})"
    (path, body), *_ = receiver.posts
    assert path == SECRET_PATH
    assert (body["status"], body["rule"], body["agent"]) == ("firing", "test", "fleet-tui-test")
    assert body["detail"] == "a test alert from fleet-tui alerts test"

    receiver.status = 500
    res = case.alerts("test", "ops")
    assert res.rc == 1
    assert "ops" in _one_line(res) and SECRET_PATH not in res.stderr

    res = case.alerts("test", "pager")
    assert res.rc == 2
    assert "channels: ops" in _one_line(res)


def test_alerts_list_json_and_silence_errors(case: Case, receiver: Receiver) -> None:
    case.write_alerts(receiver.url)
    assert case.alerts("silence", "*", "list*", "--for", "15m").rc == 0
    res = case.alerts("silence", "needs-you", "x", "--for", "soon")
    assert res.rc == 2 and "--for" in _one_line(res)
    res = case.alerts("silence", "no-such-rule", "x", "--for", "1d")
    assert res.rc == 2 and "needs-you" in _one_line(res)

    case.beat("list1", "waiting_input", "ok to delete?")
    res = case.cli("alerts", "run", "--once", "--alerts", str(case.alerts_file))
    assert res.rc == 0, res  # silenced: tracked, not sent
    res = case.alerts("list", "--json")
    assert res.rc == 0, res
    doc = json.loads(res.stdout)
    assert set(doc) >= {"rules", "episodes", "silences", "outbox"}
    (rule,) = doc["rules"]
    assert rule == {
        "name": "needs-you",
        "when": {"state": ["waiting_input", "blocked"]},
        "for_s": 0.0,
        "repeat_s": 0.0,
        "agents": ["*"],
        "to": ["terminal", "ops"],
    }
    (episode,) = doc["episodes"]
    assert (episode["agent"], episode["book"], episode["silenced"]) == ("list1", "run", True)
    assert episode["detail"] == "ok to delete?"
    (silence,) = doc["silences"]
    assert (silence["rule"], silence["agents"], silence["source"]) == ("*", ["list*"], "operator")
    assert doc["outbox"] == {"pending": 0, "given_up": 0}
    assert receiver.posts == []

    text = case.alerts("list")
    assert text.rc == 0 and "list1@h1" in text.stdout and "[silenced]" in text.stdout
    assert os.path.basename(SECRET_PATH) not in text.stdout

    # a stdout that cannot encode UTF-8: the same words, the separator in ASCII, no crash
    args = ("alerts", "list", "--alerts", str(case.alerts_file), "--state-dir", str(case.state))
    plain = case.env.cli(*args, env={"PYTHONIOENCODING": "ascii"})
    assert plain.rc == 0, plain
    assert plain.stdout.isascii() and "list1@h1" in plain.stdout
    assert "OUTBOX  pending 0 . given up 0" in plain.stdout


# -- the README's alerts example -----------------------------------------------------------------


def test_readme_alerts_example_loads_and_covers_every_channel_type(case: Case) -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    m = re.search(r"<!-- alerts-example[^>]*-->\s*```yaml\n(.*?)```", readme.read_text(), re.S)
    assert m, "README.md has no alerts example block (<!-- alerts-example --> then ```yaml)"
    case.write_alerts(text=m.group(1))
    res = case.alerts("list", "--json")
    assert res.rc == 0, res
    doc = json.loads(res.stdout)
    assert {r["name"] for r in doc["rules"]} == {"needs-you", "agent-lost", "agent-held", "budget"}
    assert [s["source"] for s in doc["silences"]] == ["file"]
    loaded = load_alerts(case.alerts_file)
    assert {c.type for c in loaded.config.channels} == {"webhook", "ntfy", "slack", "command"}
    assert loaded.warnings == []
