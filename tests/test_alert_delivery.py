"""Alert delivery (issue 15): the channels of alerts.yaml against a real HTTP receiver on
loopback (a threaded http.server on port 0, recording every request), real commands (small
scripts written here), and the on-disk outbox through an outage and a recovery.

What a user would notice: the receiver gets the right body and headers once; a failure is one
line that names the channel and says why; undelivered alerts wait on disk and arrive later, in
order, none lost and none twice; the outbox stays bounded and says when it gives something up;
no secret (a URL's path, a token) is ever in a log line or an error.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import wait_until

from fleet_tui.model.alerts import ALERT_SCHEMA, Channel
from fleet_tui.service.alert_channels import (
    DeliveryFailed,
    deliver,
    describe,
    http_client,
    message,
)
from fleet_tui.service.alert_outbox import (
    UNDELIVERABLE,
    Outbox,
    backoff_s,
)

SECRET_PATH = "/hooks/T0SECRET/B0SECRET/xoxSECRETPATH"
TOKEN = "tok-SUPERSECRET-123"
T0 = datetime(2026, 12, 5, 9, 14, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# -- a real receiver -----------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A loopback HTTP server that records requests; `mode` says how it answers:
    `ok` (204), `500`, `302` (to /elsewhere), `hang` (answers nothing until the test ends),
    `gate` (204 once `gate` is set)."""

    port: int = 0
    mode: str = "ok"
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    def start(self) -> Receiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                rec.requests.append(
                    Request(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                if rec.mode == "hang":
                    rec.release.wait(30)
                    return
                if rec.mode == "gate":  # answers once the test opens the gate
                    rec.gate.wait(30)
                if rec.mode == "302":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{rec.port}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 500 if rec.mode == "500" else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.gate.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None

    def url(self, path: str = SECRET_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with http_client() as c:
        yield c


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def body(
    status: str = "firing",
    agent: str = "rec",
    detail: str = "Allow edit of app.py?",
    n: int | None = None,
) -> dict[str, Any]:
    b: dict[str, Any] = {
        "schema": ALERT_SCHEMA,
        "status": status,
        "rule": "needs-you",
        "tenant_id": "jarvis",
        "host": "w-jarvis",
        "agent": agent,
        "health": "ok",
        "state": "waiting_input",
        "detail": detail,
        "since": "2026-12-05T09:14:02.000Z",
        "ts": "2026-12-05T09:14:05.000Z",
    }
    if n is not None:
        b["n"] = n
    return b


def channel(**kw: Any) -> Channel:
    kw.setdefault("name", "ops")
    kw.setdefault("type", "webhook")
    return Channel(**kw)


def no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET_PATH, TOKEN, "T0SECRET", "B0SECRET", "xoxSECRETPATH", "SUPERSECRET"):
            assert secret not in text, f"secret {secret!r} in {text!r}"


def failure(ch: Channel, client: httpx.Client, env: dict[str, str] | None = None) -> str:
    with pytest.raises(DeliveryFailed) as info:
        deliver(ch, body(), client=client, env=env or {})
    text = str(info.value)
    assert "\n" not in text
    no_secret(text)
    return text


# -- every channel type --------------------------------------------------------------------------


def test_webhook_posts_the_body_as_json_with_the_bearer_token(
    receiver: Receiver, client: httpx.Client
) -> None:
    ch = channel(url_env="OPS_URL", token_env="OPS_TOKEN")
    env = {"OPS_URL": receiver.url(), "OPS_TOKEN": TOKEN}
    deliver(ch, body(), client=client, env=env)
    [req] = receiver.requests
    assert req.path == SECRET_PATH
    assert req.json() == body()
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.headers["content-type"] == "application/json"
    # what a log line may say: the origin only
    text = describe(ch, env)
    assert text == f"ops (webhook, http://127.0.0.1:{receiver.port})"
    no_secret(text, describe(ch), describe(channel(url=receiver.url())))


def test_webhook_without_a_token_sends_no_authorization(
    receiver: Receiver, client: httpx.Client
) -> None:
    deliver(channel(url=receiver.url("/hook")), body(), client=client, env={})
    [req] = receiver.requests
    assert "authorization" not in req.headers
    assert req.json()["schema"] == ALERT_SCHEMA


def test_ntfy_posts_one_short_text_with_title_priority_and_tags(
    receiver: Receiver, client: httpx.Client
) -> None:
    ch = channel(type="ntfy", url=receiver.url("/fleet-alerts"), token_env="NTFY_TOKEN")
    hostile = "Allow edit of \x1b[31mapp.py\x1b[0m?\x07\r\nrm -rf / " + "x" * 500
    deliver(ch, body(detail=hostile), client=client, env={"NTFY_TOKEN": TOKEN})
    deliver(ch, body(status="resolved"), client=client, env={"NTFY_TOKEN": TOKEN})
    fire, resolve = receiver.requests
    assert fire.path == "/fleet-alerts"
    assert fire.headers["title"] == "fleet: needs-you rec"
    assert fire.headers["priority"] == "high"
    assert "bell" in fire.headers["tags"]
    assert fire.headers["authorization"] == f"Bearer {TOKEN}"
    text = fire.body.decode()
    assert text.startswith(
        "🔔 needs-you: rec (jarvis@w-jarvis) waiting_input: Allow edit of app.py?"
    )
    assert text.endswith("since 09:14:02Z")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in text)
    assert len(text) < 300  # the 500-character detail is cut
    assert resolve.headers["title"] == "fleet: resolved needs-you rec"
    assert resolve.headers["priority"] == "default"
    assert "white_check_mark" in resolve.headers["tags"]
    assert resolve.body.decode() == (
        "✓ resolved: needs-you: rec (jarvis@w-jarvis), was waiting_input since 09:14:02Z"
    )


def test_ntfy_takes_the_channels_priority_and_a_non_ascii_title(
    receiver: Receiver, client: httpx.Client
) -> None:
    ch = channel(type="ntfy", url=receiver.url("/t"), priority="urgent")
    deliver(ch, body(agent="récepteur"), client=client, env={})
    [req] = receiver.requests
    assert req.headers["priority"] == "urgent"
    assert req.headers["title"].startswith("=?UTF-8?B?")  # RFC 2047, as ntfy reads it
    assert "récepteur" in req.body.decode()


def test_slack_posts_text_json_and_agent_text_cannot_mention_anyone(
    receiver: Receiver, client: httpx.Client
) -> None:
    ch = channel(type="slack", url_env="SLACK_URL")
    deliver(
        ch,
        body(detail="<!channel> look & see <@U123>"),
        client=client,
        env={"SLACK_URL": receiver.url()},
    )
    [req] = receiver.requests
    data = req.json()
    assert set(data) == {"text"}
    assert data["text"].startswith("🔔 needs-you: rec (jarvis@w-jarvis) waiting_input:")
    assert "&lt;!channel&gt; look &amp; see &lt;@U123&gt;" in data["text"]
    assert "<" not in data["text"]
    assert "authorization" not in req.headers


def test_message_says_the_date_when_the_episode_began_another_day() -> None:
    b = body()
    b["since"] = "2026-12-04T23:59:00Z"
    assert message(b).endswith("since 2026-12-04 23:59:00Z")


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(0o700)
    return str(path)


def test_command_gets_the_json_body_on_stdin_and_its_output_is_never_shown(
    tmp_path: Path, client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "got.json"
    prog = script(
        tmp_path,
        "hook.py",
        "import sys, os\n"
        f"open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())\n"
        "print('SHOUTING ON STDOUT'); print('AND STDERR', file=sys.stderr)\n",
    )
    ch = channel(type="command", command=[prog, "--flag"])
    deliver(ch, body(), client=client, env=dict(os.environ))
    assert json.loads(out.read_text()) == body()
    captured = capfd.readouterr()
    assert "SHOUTING" not in captured.out + captured.err
    assert "STDERR" not in captured.out + captured.err
    assert describe(ch) == "ops (command, hook.py)"


def test_command_failures_say_why_in_one_redacted_line(
    tmp_path: Path, client: httpx.Client
) -> None:
    prog = script(
        tmp_path,
        "fail.py",
        "import sys\nsys.stdin.read()\n"
        f"print('\\x1b[31mbad token {TOKEN}\\x07 ' + 'y' * 300, file=sys.stderr)\n"
        "print('second line', file=sys.stderr)\nsys.exit(3)\n",
    )
    env = {**os.environ, "HOOK_TOKEN": TOKEN}
    text = failure(channel(type="command", command=[prog], token_env="HOOK_TOKEN"), client, env)
    assert text.startswith("ops: command exited 3: bad token *** yyy")
    assert "second line" not in text and "\x1b" not in text and "\x07" not in text
    assert len(text) < 160

    missing = failure(channel(type="command", command=[str(tmp_path / "nope")]), client)
    assert missing == "ops: command not found: nope"


def test_command_that_hangs_is_killed_at_its_timeout(tmp_path: Path, client: httpx.Client) -> None:
    pidfile = tmp_path / "child.pid"
    prog = script(
        tmp_path,
        "hang.sh.py",
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
    )
    t = time.monotonic()
    text = failure(channel(type="command", command=[prog], timeout_s=1), client, dict(os.environ))
    elapsed = time.monotonic() - t
    assert text == "ops: command gave no answer in 1 s (killed)"
    assert elapsed < 5 * 1 + 2
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # its child went with it (same session)
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(child, os.WNOHANG)  # not ours: only to be sure a zombie is no survivor
        except ChildProcessError:
            pass
        time.sleep(0.05)
    else:
        stat_text = Path(f"/proc/{child}/stat").read_text()
        assert stat_text.split(")")[1].split()[0] == "Z", "the command's child survived"


# -- failures ------------------------------------------------------------------------------------


def test_http_500_is_a_failure(receiver: Receiver, client: httpx.Client) -> None:
    receiver.mode = "500"
    assert failure(channel(url=receiver.url()), client) == "ops: HTTP 500"
    assert len(receiver.requests) == 1


def test_a_receiver_that_hangs_times_out(receiver: Receiver, client: httpx.Client) -> None:
    receiver.mode = "hang"
    t = time.monotonic()
    text = failure(channel(url=receiver.url(), timeout_s=0.5), client)
    assert text == "ops: no answer in 0.5 s"
    assert time.monotonic() - t < 5 * 0.5 + 2


def test_a_redirect_is_not_followed(receiver: Receiver, client: httpx.Client) -> None:
    receiver.mode = "302"
    text = failure(channel(type="slack", url=receiver.url()), client)
    assert text == "ops: redirected (302), not followed"
    assert [r.path for r in receiver.requests] == [SECRET_PATH]  # nothing went to /elsewhere


def test_connection_refused(client: httpx.Client) -> None:
    port = free_port()
    text = failure(
        channel(url_env="OPS_URL", token_env="OPS_TOKEN"),
        client,
        {"OPS_URL": f"http://127.0.0.1:{port}{SECRET_PATH}", "OPS_TOKEN": TOKEN},
    )
    assert text.startswith("ops: cannot connect (")
    assert "refused" in text.lower()


def test_missing_environment_is_named(client: httpx.Client) -> None:
    assert failure(channel(url_env="OPS_URL"), client) == "ops: $OPS_URL is not set"
    text = failure(channel(url="http://127.0.0.1:9/x", token_env="OPS_TOKEN"), client)
    assert text == "ops: $OPS_TOKEN is not set"
    bad = failure(channel(url_env="OPS_URL"), client, {"OPS_URL": f"ftp://h{SECRET_PATH}"})
    assert bad == "ops: $OPS_URL is not an http:// or https:// URL"
    for token in (f"{TOKEN}\r\nX-Evil: 1", f"{TOKEN} x", f"{TOKEN}é"):
        text = failure(
            channel(url="http://127.0.0.1:9/x", token_env="OPS_TOKEN"),
            client,
            {"OPS_TOKEN": token},
        )
        assert text == "ops: $OPS_TOKEN is not a token (a header cannot carry it)"


# -- the outbox ----------------------------------------------------------------------------------


class Log(list[str]):
    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.append(line)


def sender(client: httpx.Client, env: dict[str, str]) -> Any:
    def send(ch: Channel, b: dict[str, Any]) -> None:
        deliver(ch, b, client=client, env=env)

    return send


def test_outage_and_recovery_all_delivered_in_order_none_lost_none_twice(
    tmp_path: Path, client: httpx.Client
) -> None:
    port = free_port()
    env = {"OPS_URL": f"http://127.0.0.1:{port}{SECRET_PATH}", "OPS_TOKEN": TOKEN}
    ch = channel(url_env="OPS_URL", token_env="OPS_TOKEN")
    channels = {"ops": ch}
    log = Log()
    box = Outbox(tmp_path / "outbox", log=log)
    send = sender(client, env)
    for i in range(3):
        box.put("ops", body(n=i), T0)
    assert box.pending() == 3
    assert box.next_due() == T0

    # the receiver is down: one try for the channel, the others wait behind it
    r = box.flush(channels, T0, send, log)
    assert (r.delivered, r.failed, r.waiting, r.given_up) == (0, 1, 2, 0)
    assert box.pending() == 3
    assert len(log) == 1 and "cannot connect" in log[0] and "attempt 1" in log[0]
    due = box.next_due()
    assert due is not None and T0 + timedelta(seconds=5) <= due <= T0 + timedelta(seconds=5.5)

    # not due yet: nothing tried
    r = box.flush(channels, T0 + timedelta(seconds=1), send, log)
    assert (r.delivered, r.failed, r.waiting) == (0, 0, 3)
    assert len(log) == 1

    # due, still down: the backoff doubles
    now = due
    r = box.flush(channels, now, send, log)
    assert r.failed == 1 and "attempt 2" in log[-1]
    due = box.next_due()
    assert due is not None and now + timedelta(seconds=10) <= due <= now + timedelta(seconds=11)

    # more alerts arrive during the outage; they queue behind the first
    box.put("ops", body(n=3), now)
    box.put("ops", body(n=4, status="resolved"), now)
    assert box.next_due() == due

    # the receiver comes back on the same port
    rec = Receiver(port=port).start()
    try:
        r = box.flush(channels, due, send, log)
        assert (r.delivered, r.failed, r.waiting, r.given_up) == (5, 0, 0, 0)
        assert [req.json()["n"] for req in rec.requests] == [0, 1, 2, 3, 4]
        assert all(req.headers["authorization"] == f"Bearer {TOKEN}" for req in rec.requests)
        assert box.pending() == 0 and box.next_due() is None
        # nothing twice
        r = box.flush(channels, due + timedelta(hours=1), send, log)
        assert r == type(r)()
        assert len(rec.requests) == 5
    finally:
        rec.stop()
    assert box.given_up() == 0
    no_secret(*log)


def test_a_dead_channel_is_asked_once_per_flush_and_holds_only_its_own_items(
    tmp_path: Path, receiver: Receiver, client: httpx.Client
) -> None:
    dead = Receiver(mode="500").start()
    try:
        channels = {
            "dead": channel(name="dead", url=dead.url()),
            "live": channel(name="live", type="slack", url=receiver.url()),
        }
        log = Log()
        box = Outbox(tmp_path / "ob", log=log)
        for i in range(3):
            box.put("dead", body(n=i), T0)
            box.put("live", body(agent=f"a{i}"), T0)
        r = box.flush(channels, T0, sender(client, {}), log)
        assert (r.delivered, r.failed, r.waiting) == (3, 1, 2)
        assert len(dead.requests) == 1 and dead.requests[0].json()["n"] == 0
        assert [req.json()["text"].split(": ")[1].split()[0] for req in receiver.requests] == [
            "a0",
            "a1",
            "a2",
        ]
        assert log == [
            "alert to dead: needs-you rec firing: not delivered (dead: HTTP 500); "
            "attempt 1, next in 5 s"
        ]
        no_secret(*log)
    finally:
        dead.stop()


def test_backoff_doubles_to_five_minutes_with_a_little_jitter() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 50)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        300,
        300,
        300,
    ]
    import random

    rng = random.Random(1)
    for n in range(1, 12):
        d = backoff_s(n, rng)
        assert backoff_s(n) <= d <= backoff_s(n) * 1.1


def test_outbox_full_moves_the_oldest_to_undeliverable_with_a_log_line(tmp_path: Path) -> None:
    log = Log()
    box = Outbox(tmp_path / "ob", max_items=3, log=log)
    for i in range(5):
        box.put("ops", body(n=i), T0 + timedelta(seconds=i))
    assert box.pending() == 3
    assert box.given_up() == 2
    assert len(log) == 2 and all("outbox full" in line for line in log)
    lines = [json.loads(x) for x in (tmp_path / "ob" / UNDELIVERABLE).read_text().splitlines()]
    assert [x["body"]["n"] for x in lines] == [0, 1]
    assert all(x["reason"] == "outbox full (3 waiting)" and x["channel"] == "ops" for x in lines)
    assert [b["n"] for _, b in box.items()] == [2, 3, 4]


def test_too_old_or_no_longer_configured_is_given_up_with_the_reason(
    tmp_path: Path, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.mode = "500"
    log = Log()
    box = Outbox(tmp_path / "ob", max_age_s=3600, log=log)
    ch = channel(url=receiver.url())
    box.put("ops", body(n=0), T0)
    box.put("gone", body(n=1), T0)
    r = box.flush({"ops": ch}, T0, sender(client, {}), log)
    assert (r.failed, r.given_up) == (1, 1)
    assert any("given up" in x and "'gone' is no longer configured" in x for x in log)
    r = box.flush({"ops": ch}, T0 + timedelta(seconds=3601), sender(client, {}), log)
    assert (r.delivered, r.failed, r.given_up) == (0, 0, 1)
    assert "not delivered within 1 h (last: ops: HTTP 500)" in log[-1]
    assert box.pending() == 0 and box.given_up() == 2
    assert len(receiver.requests) == 1
    no_secret(*log, (tmp_path / "ob" / UNDELIVERABLE).read_text())


def test_bad_files_are_moved_aside_and_never_crash(
    tmp_path: Path, receiver: Receiver, client: httpx.Client
) -> None:
    folder = tmp_path / "ob"
    log = Log()
    box = Outbox(folder, log=log)
    box.put("ops", body(n=0), T0)
    good = json.loads((folder / "000000000001.json").read_text())
    (folder / "000000000002.json").write_text(json.dumps(good)[:40])  # truncated
    (folder / "000000000003.json").write_text('{"v": 1, "channel": 3}')  # wrong fields
    (folder / "notes.txt").write_text("hello")
    os.mkfifo(folder / "000000000004.json")  # never blocks a read
    box.put("ops", body(n=5), T0)
    assert box.next_due() == T0
    r = box.flush({"ops": channel(url=receiver.url())}, T0, sender(client, {}), log)
    assert r.delivered == 2
    assert [req.json()["n"] for req in receiver.requests] == [0, 5]
    names = sorted(os.listdir(folder))
    assert "000000000002.json.bad" in names and "notes.txt.bad" in names
    assert "000000000003.json.bad" in names and "000000000004.json.bad" in names
    assert sum("moved aside" in x for x in log) == 4
    assert box.pending() == 0
    # a second flush finds nothing new to complain about
    n = len(log)
    box.flush({"ops": channel(url=receiver.url())}, T0, sender(client, {}), log)
    assert len(log) == n


def test_files_are_private_and_undeliverable_stays_bounded(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "ob"
    log = Log()
    box = Outbox(folder, max_items=1, log=log)
    big = "z" * 20_000
    for i in range(80):
        box.put("ops", body(n=i, detail=big), T0)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in os.listdir(folder):
        if name != ".lock":
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    size = (folder / UNDELIVERABLE).stat().st_size
    assert size <= 1 << 20
    lines = (folder / UNDELIVERABLE).read_text().splitlines()
    assert 0 < box.given_up() == len(lines) < 79
    assert json.loads(lines[-1])["body"]["n"] == 78  # the newest are kept
    assert box.pending() == 1


def test_a_second_outbox_on_the_same_folder_continues_the_order(tmp_path: Path) -> None:
    folder = tmp_path / "ob"
    Outbox(folder).put("ops", body(n=0), T0)
    Outbox(folder).put("ops", body(n=1), T0)
    box = Outbox(folder)
    box.put("ops", body(n=2), T0)
    assert [b["n"] for _, b in box.items()] == [0, 1, 2]


def test_put_while_a_flush_is_sending_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, receiver: Receiver, client: httpx.Client
) -> None:
    receiver.mode = "gate"
    log = Log()
    box = Outbox(tmp_path / "ob", max_items=3, log=log)
    for i in range(3):
        box.put("ops", body(n=i), T0)
    channels = {"ops": channel(url=receiver.url())}
    results = []
    worker = threading.Thread(
        target=lambda: results.append(box.flush(channels, T0, sender(client, {}), log))
    )
    worker.start()
    try:
        wait_until(lambda: receiver.requests, message="the first alert at the receiver")
        box.put("ops", body(n=3), T0)  # the outbox is full, but the oldest is being sent
    finally:
        receiver.gate.set()
        worker.join(10)
    assert results[0].delivered == 3
    assert box.given_up() == 0 and box.pending() == 1
    box.flush(channels, T0, sender(client, {}), log)
    assert [r.json()["n"] for r in receiver.requests] == [0, 1, 2, 3]
    assert box.pending() == 0 and log == []
