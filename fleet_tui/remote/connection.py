"""How to reach a gateway (DESIGN.md "Gateway API, version 1"): its address, the token, one
bounded request, and what failed. The reads (`fleet_tui.remote.client`) and the publisher's writes
(`fleet_tui.remote.push`) both go through `GatewayConnection`.

- Settings: the address from `--gateway URL` or `MOSAIC_FLEET_GATEWAY_URL`; the token from
  `--token-file PATH` (mode 0600, else a one-line error) or `MOSAIC_FLEET_GATEWAY_TOKEN`. The token
  lives in a `Secret`: never displayed, never logged, never in an exception's text (every reason
  this module produces is passed through `redact`). TLS is verified; `--insecure` (no TLS, or TLS
  not verified) is accepted only for a loopback address.
- Requests: httpx with connect and read timeouts plus an overall deadline per answer (a server
  that dribbles bytes cannot hold a poll longer), and a cap on the answer's size. A failure is a
  `GatewayError` with a one-line reason and a kind that says whether retrying can help.
- `Backoff`: exponential with jitter after failures; callers skip attempts until it is due.

This module never touches tmux or the state dir.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit, urlunsplit

from fleet_tui.errors import BadInput

if TYPE_CHECKING:
    import httpx

URL_ENV = "MOSAIC_FLEET_GATEWAY_URL"
TOKEN_ENV = "MOSAIC_FLEET_GATEWAY_TOKEN"
API_PREFIX = "/api/fleet/v1"
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_TOKEN_BYTES = 4096
REJECTED_STATUS = frozenset({400, 413, 422})  # the request's body is bad: retrying cannot help


class Secret:
    """A token. `str()` and `repr()` never show it; only `reveal()` does (for the header)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class GatewayError(Exception):
    """A request to the gateway failed; the message is one line and holds no secret.

    `kind`: `unreachable` (connect failed), `timeout`, `refused` (401/403), `rejected` (400, 413,
    422: the request itself is bad and will not succeed when retried), `misdirected` (another
    4xx, e.g. 404: the address does not lead to the gateway API; nothing is wrong with the
    request), `server` (5xx, 408, 429), `invalid` (the answer is not what the contract says)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        code: str | None = None,
        items: list[tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code  # the error answer's `error.code`, when it gave one
        # (index, "field: why") of each invalid item of a batch (422 `invalid_items`)
        self.items: list[tuple[int, str]] = items or []

    @property
    def retryable(self) -> bool:
        return self.kind in ("unreachable", "timeout", "server", "invalid", "misdirected")


# -- settings ------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_gateway_url(url: str, *, insecure: bool) -> str:
    """The base address, normalized (no trailing slash); BadInput says what is wrong.

    Plain `http://` sends the token in clear text: only to a loopback address, and only with
    `--insecure`. `--insecure` on an https address turns verification off, loopback only too."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise BadInput(f"--gateway: not a valid address: '{_display(text)}'") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--gateway: expected http(s)://HOST[:PORT], got '{_display(text)}'")
    if parts.username or parts.password:
        raise BadInput("--gateway: put the token in MOSAIC_FLEET_GATEWAY_TOKEN, not in the address")
    if parts.query or parts.fragment:
        raise BadInput(f"--gateway: no query or fragment expected in '{_display(text)}'")
    host = parts.hostname
    loop = is_loopback(host)
    if insecure and not loop:
        raise BadInput(
            f"--insecure is only accepted for a loopback address (not '{host}'): "
            "TLS is always verified for other hosts"
        )
    if parts.scheme == "http" and not insecure:
        where = "use https" if not loop else "pass --insecure to allow plain http on loopback"
        raise BadInput(
            f"--gateway {_display(text)}: plain http would send the token in clear text; {where}"
        )
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc += f":{port}"
    path = parts.path.rstrip("/")
    if path.endswith(API_PREFIX):  # the API's address given for the gateway's: same gateway
        path = path[: -len(API_PREFIX)]
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _display(url: str) -> str:
    """An address as it may be shown: without user info, cut to a sane length."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        url = url.split("@")[-1]
    return url[:200]


def load_token(token_file: str | None, environ: Mapping[str, str] | None = None) -> Secret | None:
    """The token: from `token_file` (must be a regular file of mode 0600 or stricter) or from
    MOSAIC_FLEET_GATEWAY_TOKEN; None when neither is given. Raises BadInput (one line)."""
    env = os.environ if environ is None else environ
    if token_file:
        path = Path(token_file).expanduser()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise BadInput(f"--token-file {path}: no such file") from None
        except OSError as exc:
            raise BadInput(f"--token-file {path}: unreadable ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(f"--token-file {path}: not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise BadInput(
                f"--token-file {path}: mode {mode:04o} lets others read it; run 'chmod 600 {path}'"
            )
        if st.st_uid != os.getuid():
            raise BadInput(f"--token-file {path}: owned by uid {st.st_uid}, not by you")
        try:
            raw = path.read_bytes()[: MAX_TOKEN_BYTES + 1]
        except OSError as exc:
            raise BadInput(f"--token-file {path}: unreadable ({exc.strerror})") from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise BadInput(f"--token-file {path}: larger than {MAX_TOKEN_BYTES} bytes")
        try:
            value = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise BadInput(f"--token-file {path}: not a token (not ASCII text)") from None
        where = f"--token-file {path}"
    else:
        value = env.get(TOKEN_ENV, "").strip()
        if not value:
            return None
        where = TOKEN_ENV
    if not value:
        raise BadInput(f"{where}: empty token")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise BadInput(f"{where}: a token is one word of printable characters")
    return Secret(value)


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway is and how to talk to it (carried beside FleetConfig)."""

    url: str
    token: Secret | None = field(repr=False)
    insecure: bool = False
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    deadline_s: float = 8.0  # whole answer, however the server dribbles it
    stale_after_s: float = 60.0  # a host whose data is older is marked stale
    refresh_s: float = 2.0  # the dashboard asks at most this often

    @property
    def display(self) -> str:
        return _display(self.url)


def gateway_settings(
    url: str | None,
    *,
    token_file: str | None = None,
    insecure: bool = False,
    environ: Mapping[str, str] | None = None,
    require_token: bool = True,
) -> GatewaySettings | None:
    """Settings from the flags and the environment; None when no gateway is named."""
    env = os.environ if environ is None else environ
    url = url or env.get(URL_ENV) or None
    if not url:
        if token_file or insecure:
            raise BadInput("--token-file and --insecure need a gateway (--gateway URL)")
        return None
    base = check_gateway_url(url, insecure=insecure)
    token = load_token(token_file, env)
    if token is None and require_token:
        raise BadInput(
            f"gateway {_display(base)}: no token; set {TOKEN_ENV} or pass --token-file PATH"
        )
    return GatewaySettings(url=base, token=token, insecure=insecure)


# -- backoff -------------------------------------------------------------------------------------


class Backoff:
    """Exponential backoff with full jitter: after the k-th failure in a row the next attempt is
    due after a random delay in [base*2^(k-1)/2, base*2^(k-1)], capped at `cap_s`."""

    def __init__(
        self,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng
        self.failures = 0
        self.due_at = 0.0  # monotonic

    def ready(self, now: float) -> bool:
        return now >= self.due_at

    def wait_s(self, now: float) -> float:
        return max(self.due_at - now, 0.0)

    def failed(self, now: float) -> float:
        """Record a failure; returns the delay until the next attempt."""
        self.failures += 1
        top = min(self.cap_s, self.base_s * float(2 ** min(self.failures - 1, 30)))
        delay = top / 2 + top / 2 * self.rng()
        self.due_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.due_at = 0.0


# -- one request ---------------------------------------------------------------------------------


class GatewayConnection:
    """One gateway, one request at a time (callers serialize): the token sent, the answer
    bounded in time and size, every failure a `GatewayError`. Blocking."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx  # here, not at import: a dashboard without a gateway never loads it

        self.settings = settings
        headers = {"Accept": "application/json", "User-Agent": "fleet-tui"}
        self._client = httpx.Client(
            base_url=settings.url + API_PREFIX,
            headers=headers,
            timeout=httpx.Timeout(
                settings.read_timeout_s,
                connect=settings.connect_timeout_s,
                pool=settings.connect_timeout_s,
            ),
            verify=not settings.insecure,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment sees the token
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """`text` without the token (a server may echo it back) and cut to one line."""
        token = self.settings.token
        if token is not None and token.reveal():
            text = text.replace(token.reveal(), "***")
        text = " ".join(text.split())
        return "".join(c for c in text if c.isprintable())[:300]

    def _auth(self) -> dict[str, str]:
        token = self.settings.token
        return {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}

    def request(
        self,
        method: str,
        route: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, object]:
        """One request; returns (status, decoded JSON) for a 2xx answer, raises GatewayError."""
        import httpx

        headers = {**self._auth(), **(headers or {})}
        where = f"gateway {self.settings.display}"
        deadline = time.monotonic() + self.settings.deadline_s
        try:
            with self._client.stream(
                method, route, params=params, content=content, headers=headers
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise GatewayError(
                            f"{where}: answer larger than {MAX_ANSWER_BYTES // 1048576} MB",
                            kind="invalid",
                        )
                    if time.monotonic() > deadline:
                        raise GatewayError(
                            f"{where}: no complete answer within {self.settings.deadline_s:g} s",
                            kind="timeout",
                        )
                    chunks.append(chunk)
                status = resp.status_code
                raw = b"".join(chunks)
        except GatewayError:
            raise
        except httpx.ConnectTimeout:
            raise GatewayError(
                f"{where}: unreachable (no connection within {self.settings.connect_timeout_s:g} s)",
                kind="unreachable",
            ) from None
        except httpx.TimeoutException:
            raise GatewayError(
                f"{where}: no answer within {self.settings.read_timeout_s:g} s", kind="timeout"
            ) from None
        except httpx.ConnectError as exc:
            raise GatewayError(
                f"{where}: unreachable ({self.redact(_reason(exc))})", kind="unreachable"
            ) from None
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"{where}: request failed ({type(exc).__name__}: {self.redact(_reason(exc))})",
                kind="unreachable",
            ) from None
        if time.monotonic() > deadline:
            raise GatewayError(
                f"{where}: no complete answer within {self.settings.deadline_s:g} s",
                kind="timeout",
            )
        if not 200 <= status < 300:
            detail = self.redact(_error_message(raw))
            detail = f": {detail}" if detail else ""
            if status in (401, 403):
                what = "token refused" if status == 401 else "not allowed for this token"
                raise GatewayError(
                    f"{where}: {what} ({status}){detail}", kind="refused", status=status
                )
            if status in REJECTED_STATUS:
                code, items = _error_items(raw)
                raise GatewayError(
                    f"{where}: request rejected ({status}){detail}",
                    kind="rejected",
                    status=status,
                    code=code,
                    items=[(i, self.redact(m)[:200]) for i, m in items],
                )
            if 400 <= status < 500 and status not in (408, 429):
                raise GatewayError(
                    f"{where}: not the gateway API ({status}){detail}; give the gateway's base "
                    "address (as for `gateway serve`), e.g. https://HOST:PORT",
                    kind="misdirected",
                    status=status,
                )
            what = "busy, retry later" if status in (408, 429) else "server error"
            raise GatewayError(f"{where}: {what} ({status}){detail}", kind="server", status=status)
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            what = (
                "an HTML page, not JSON: is this the gateway's address?"
                if _is_html(raw)
                else "not JSON"
            )
            raise GatewayError(
                f"{where}: answer is {what}", kind="invalid", status=status
            ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # "[Errno 111] Connection refused" -> "connection refused"
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    return text[:1].lower() + text[1:]


def _is_html(raw: bytes) -> bool:
    head = raw[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def _error_items(raw: bytes) -> tuple[str | None, list[tuple[int, str]]]:
    """The `error.code` of an error answer and, for `invalid_items`, each (index, message)."""
    try:
        data = json.loads(raw[:MAX_ANSWER_BYTES])
    except (UnicodeDecodeError, ValueError):
        return None, []
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, []
    code = err.get("code") if isinstance(err.get("code"), str) else None
    items: list[tuple[int, str]] = []
    raw_items = err.get("items")
    for it in raw_items if isinstance(raw_items, list) else []:
        if not isinstance(it, dict):
            continue
        index = it.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            items.append((index, str(it.get("message", ""))))
    return code, items


def _error_message(raw: bytes) -> str:
    """The `{"error": {"message"}}` of an error answer, else the start of its text."""
    try:
        data = json.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            msg = err.get("message") or err.get("code")
            return str(msg)[:200] if msg else ""
        if isinstance(data, dict) and "detail" in data:
            return str(data["detail"])[:200]
    except (UnicodeDecodeError, ValueError):
        pass
    if _is_html(raw):
        return "an HTML page, not the gateway's error answer"
    text = raw[:200].decode("utf-8", "replace")
    return "".join(c for c in text if c.isprintable())
