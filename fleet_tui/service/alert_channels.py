"""Alert delivery to the outside channels of alerts.yaml (DESIGN.md "Alerts, version 1").

`deliver(channel, body, client=, env=)` sends one webhook body (`mosaic.fleet.alert/v1`, as
`core.alerts.AlertEvent.body` makes it) to one channel, or raises `DeliveryFailed`:

- `webhook`: the body as JSON, `Authorization: Bearer <$token_env>` when the channel names one;
- `ntfy`: one short text line to the topic URL, with `Title`, `Priority` (the channel's, else
  `high` when firing and `default` when resolved) and `Tags` headers (and the bearer token);
- `slack`: `{"text": "..."}` for a Slack-compatible incoming webhook (`<`, `>`, `&` escaped, so
  agent text cannot mention `@channel` or a user);
- `command`: the argv (never a shell) with the JSON body on stdin, in its own session, killed
  with its children after `timeout_s`; exit 0 is delivered. Its output is never printed: only
  the first line of its stderr, cleaned and cut, goes into the failure's reason.

Any 2xx answer is delivered; a redirect is never followed (it is a failure, as it would send
the alert somewhere the file does not name). Connect and read each wait at most the channel's
`timeout_s`.

Secrets: a URL's path and query (a Slack or ntfy URL is itself the secret) and the token are
never in a `DeliveryFailed` text nor in `describe`: they name the channel, its type and the
URL's `scheme://host[:port]` only, and any text from outside (an error, a command's stderr) has
the URL, its path and the token replaced by `***` before it is shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from base64 import b64encode
from collections.abc import Mapping
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

import httpx

from fleet_tui.core.sanitize import clean_text
from fleet_tui.model.alerts import Channel
from fleet_tui.protocol.clock import parse_ts

REASON_MAX = 120  # a command's stderr line in a reason
DETAIL_MAX = 200  # the agent's detail in a ntfy/slack text
NAME_MAX = 64
STDERR_KEEP = 4096  # bytes of a command's stderr read; the rest is drained and dropped
USER_AGENT = "fleet-tui-alerts"
_TOKEN_OK = re.compile(r"^[!-~]{1,4096}$")  # printable ASCII, no space: what a header carries


class DeliveryFailed(Exception):
    """One alert was not delivered to one channel. `str()` is one line that names the channel
    and says why, with no secret in it (safe for a log line and the terminal)."""

    def __init__(self, channel: str, why: str) -> None:
        super().__init__(f"{channel}: {why}")
        self.channel = channel
        self.why = why


def http_client() -> httpx.Client:
    """A client fit for `deliver`: redirects never followed, a User-Agent of ours. The caller
    closes it (one per `alerts run` is enough: connections are reused)."""
    return httpx.Client(
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(10.0),
    )


# -- what may be said about a channel ------------------------------------------------------------


def _origin(url: str) -> str:
    """`scheme://host[:port]` of `url`, without user info, path, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    scheme = parts.scheme or "?"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def describe(channel: Channel, env: Mapping[str, str] | None = None) -> str:
    """What a log line may say about `channel`: its name, its type, and where it goes reduced
    to `scheme://host[:port]` (never a path, a query or a token), or the command's program
    name. With `env`, a URL from `url_env` is shown the same way."""
    if channel.type == "command":
        program = os.path.basename((channel.command or ["?"])[0]) or "?"
        where = clean_text(program, max_len=NAME_MAX)
    elif channel.url is not None:
        where = _origin(channel.url)
    else:
        value = env.get(channel.url_env or "") if env is not None else None
        where = _origin(value) if value else f"${channel.url_env}"
    return f"{channel.name} ({channel.type}, {where})"


class _Secrets:
    """The strings of one channel that no message may carry."""

    def __init__(self, url: str | None, token: str | None) -> None:
        items: list[str] = []
        if url:
            items.append(url)
            with contextlib.suppress(ValueError):
                parts = urlsplit(url)
                rest = parts.path + (f"?{parts.query}" if parts.query else "")
                if len(rest) > 1:
                    items.append(rest)
                if parts.path and len(parts.path) > 1:
                    items.append(parts.path)
                if parts.query:
                    items.append(parts.query)
                if parts.password:
                    items.append(parts.password)
                if parts.username:
                    items.append(parts.username)
            with contextlib.suppress(httpx.InvalidURL, ValueError, UnicodeError):
                u = httpx.URL(url)  # the forms an httpx message would show
                items += [str(u), u.raw_path.decode("ascii", "replace"), u.path, u.query.decode()]
        if token:
            items.append(token)
        # longest first, so a URL goes as a whole before its path does
        self.items = sorted({s for s in items if len(s) >= 2}, key=len, reverse=True)

    def redact(self, text: str, max_len: int = REASON_MAX) -> str:
        for s in self.items:
            text = text.replace(s, "***")
        text = " ".join(clean_text(text).split())
        for s in self.items:  # cleaning may have joined a secret cut by a control character
            text = text.replace(s, "***")
        if len(text) > max_len:
            text = text[: max_len - 1] + "…"
        return text


# -- the text of ntfy and slack ------------------------------------------------------------------


def _field(body: Mapping[str, Any], key: str, max_len: int = NAME_MAX) -> str:
    value = body.get(key)
    if value is None:
        return ""
    return " ".join(clean_text(str(value), max_len=max_len).split())


def _clock(body: Mapping[str, Any], key: str) -> str:
    """`since` as `09:14:02Z`, with the date in front when it is not the day of `ts`."""
    when = parse_ts(body.get(key))
    if when is None:
        return ""
    when = when.astimezone(UTC)
    ts = parse_ts(body.get("ts"))
    text = when.strftime("%H:%M:%SZ")
    if ts is not None and ts.astimezone(UTC).date() != when.date():
        text = when.strftime("%Y-%m-%d ") + text
    return text


def _who(body: Mapping[str, Any]) -> str:
    agent = _field(body, "agent") or "?"
    tenant = _field(body, "tenant_id")
    host = _field(body, "host")
    where = f"{tenant}@{host}" if tenant and host else (host or tenant)
    return f"{agent} ({where})" if where else agent


def firing(body: Mapping[str, Any]) -> bool:
    return body.get("status") != "resolved"


def title(body: Mapping[str, Any]) -> str:
    """ntfy's Title: `fleet: needs-you rec` (`fleet: resolved needs-you rec`)."""
    rule = _field(body, "rule") or "alert"
    agent = _field(body, "agent") or "?"
    return f"fleet: {rule} {agent}" if firing(body) else f"fleet: resolved {rule} {agent}"


def message(body: Mapping[str, Any]) -> str:
    """One short line for a human: `🔔 needs-you: rec (jarvis@w-jarvis) waiting_input: Allow
    edit of app.py? since 09:14:02Z`, or `✓ resolved: needs-you: rec (jarvis@w-jarvis), was
    waiting_input since 09:14:02Z`. Every field is cleaned of control characters and cut."""
    rule = _field(body, "rule") or "alert"
    what = _field(body, "state") or _field(body, "health")
    since = _clock(body, "since")
    since_text = f" since {since}" if since else ""
    if firing(body):
        detail = _field(body, "detail", DETAIL_MAX)
        head = f"🔔 {rule}: {_who(body)}"
        if what and detail:
            return f"{head} {what}: {detail}{since_text}"
        if what or detail:
            return f"{head} {what or detail}{since_text}"
        return head + since_text
    was = f", was {what}" if what else ""
    return f"✓ resolved: {rule}: {_who(body)}{was}{since_text}"


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no `<!channel>`, `<@U123>` or link from
    agent text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(value: str) -> str:
    """A header value: ASCII as is, anything else as RFC 2047 (ntfy reads it)."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return "=?UTF-8?B?" + b64encode(value.encode("utf-8")).decode("ascii") + "?="


# -- sending -------------------------------------------------------------------------------------


def _env_value(channel: Channel, var: str, env: Mapping[str, str]) -> str:
    value = env.get(var)
    if not value:
        raise DeliveryFailed(channel.name, f"${var} is not set")
    return value


def _url(channel: Channel, env: Mapping[str, str]) -> str:
    if channel.url is not None:
        return channel.url
    var = channel.url_env or "?"
    url = _env_value(channel, var, env).strip()
    if not url.startswith(("http://", "https://")):
        raise DeliveryFailed(channel.name, f"${var} is not an http:// or https:// URL")
    return url


def _post(
    channel: Channel,
    url: str,
    secrets: _Secrets,
    *,
    content: bytes,
    headers: dict[str, str],
    client: httpx.Client,
) -> None:
    t = channel.timeout_s
    name = channel.name
    try:
        with client.stream(
            "POST",
            url,
            content=content,
            headers=headers,
            timeout=httpx.Timeout(t, connect=t, pool=t),
            follow_redirects=False,
        ) as resp:
            status = resp.status_code  # the answer's body is never read: nothing to wait for
    except httpx.ConnectTimeout:
        raise DeliveryFailed(name, f"no connection in {t:g} s") from None
    except httpx.TimeoutException:
        raise DeliveryFailed(name, f"no answer in {t:g} s") from None
    except httpx.ConnectError as exc:
        why = secrets.redact(_os_reason(exc)) or "connection failed"
        raise DeliveryFailed(name, f"cannot connect ({why})") from None
    except httpx.HTTPError as exc:
        why = secrets.redact(str(exc))
        raise DeliveryFailed(name, f"request failed ({type(exc).__name__}: {why})") from None
    except (httpx.InvalidURL, ValueError):
        raise DeliveryFailed(name, "the URL or a header is not valid") from None
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise DeliveryFailed(name, f"redirected ({status}), not followed")
    raise DeliveryFailed(name, f"HTTP {status}")


def _os_reason(exc: BaseException) -> str:
    """`Connection refused` rather than `[Errno 111] Connection refused`."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
        cur = cur.__cause__ or cur.__context__
    text = str(exc)
    if text.startswith("[Errno ") and "] " in text:
        text = text.split("] ", 1)[1]
    return text


def _http(
    channel: Channel, body: Mapping[str, Any], client: httpx.Client, env: Mapping[str, str]
) -> None:
    url = _url(channel, env)
    token = _env_value(channel, channel.token_env, env) if channel.token_env else None
    if token is not None and not _TOKEN_OK.match(token):
        raise DeliveryFailed(
            channel.name, f"${channel.token_env} is not a token (a header cannot carry it)"
        )
    secrets = _Secrets(url, token)
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if channel.type == "webhook":
        content = json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    elif channel.type == "ntfy":
        content = message(body).encode()
        headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["Title"] = _header(title(body))
        headers["Priority"] = _header(channel.priority or ("high" if firing(body) else "default"))
        rule = _field(body, "rule")
        tag = "bell" if firing(body) else "white_check_mark"
        headers["Tags"] = _header(f"{tag},{rule}" if rule else tag)
    else:  # slack
        text = slack_escape(message(body))
        content = json.dumps({"text": text}, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    _post(channel, url, secrets, content=content, headers=headers, client=client)


def _drain(stream: Any, keep: bytearray) -> None:
    """Read `stream` to its end (then close it), keeping its first STDERR_KEEP bytes."""
    with contextlib.suppress(OSError, ValueError):
        try:
            while True:
                chunk = stream.read1(65536)
                if not chunk:
                    break
                room = STDERR_KEEP - len(keep)
                if room > 0:
                    keep.extend(chunk[:room])
        finally:
            stream.close()


def _feed(stream: Any, data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        try:
            stream.write(data)
        finally:
            stream.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()


def _command(channel: Channel, body: Mapping[str, Any], env: Mapping[str, str]) -> None:
    argv = list(channel.command or [])
    name = channel.name
    program = clean_text(os.path.basename(argv[0]) if argv else "?", max_len=NAME_MAX)
    token = env.get(channel.token_env) if channel.token_env else None
    secrets = _Secrets(None, token)
    data = json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    t = channel.timeout_s
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=dict(env),
            close_fds=True,
            start_new_session=True,  # its children go with it when it is killed
        )
    except FileNotFoundError:
        raise DeliveryFailed(name, f"command not found: {program}") from None
    except PermissionError:
        raise DeliveryFailed(
            name, f"command cannot be run (permission denied): {program}"
        ) from None
    except OSError as exc:
        why = secrets.redact(exc.strerror or type(exc).__name__)
        raise DeliveryFailed(name, f"command cannot be run: {program}: {why}") from None
    err = bytearray()
    threads = [
        threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for th in threads:
        th.start()
    try:
        rc = proc.wait(timeout=t)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.wait()
        raise DeliveryFailed(name, f"command gave no answer in {t:g} s (killed)") from None
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        # A grandchild still holding stderr open must not hold us: wait a moment for the
        # first line, then leave the reader (it closes the pipe when the grandchild does).
        deadline = time.monotonic() + 1.0
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
    if rc == 0:
        return
    first = bytes(err).decode("utf-8", "replace").strip().splitlines()
    line = secrets.redact(first[0]) if first else ""
    if rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = str(-rc)
        what = f"command killed by {sig}"
    else:
        what = f"command exited {rc}"
    raise DeliveryFailed(name, f"{what}: {line}" if line else what)


def deliver(
    channel: Channel,
    body: Mapping[str, Any],
    *,
    client: httpx.Client,
    env: Mapping[str, str],
) -> None:
    """Send `body` to `channel`; returns when delivered, raises DeliveryFailed otherwise.
    Blocking (at most about `timeout_s` for a command, connect plus read for HTTP): call it
    from a worker, never from the dashboard's event loop. `env` gives `url_env` and
    `token_env` (and is the environment a command runs with)."""
    if channel.type == "command":
        _command(channel, body, env)
    else:
        _http(channel, body, client, env)
