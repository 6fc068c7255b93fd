"""The gateway client (DESIGN.md "Gateway API, version 1"): reads the cross-host register and
carries the publisher's POSTs.

- Settings: the address from `--gateway URL` or `MOSAIC_FLEET_GATEWAY_URL`; the token from
  `--token-file PATH` (mode 0600, else a one-line error) or `MOSAIC_FLEET_GATEWAY_TOKEN`. The token
  lives in a `Secret`: never displayed, never logged, never in an exception's text (every reason
  this module produces is passed through `redact`). TLS is verified; `--insecure` (no TLS, or TLS
  not verified) is accepted only for a loopback address.
- Requests: httpx with connect and read timeouts plus an overall deadline per answer (a server
  that dribbles bytes cannot hold a poll longer), and a cap on the answer's size.
- Answers are validated (pydantic): nonsense becomes a `GatewayError` with a one-line reason,
  never a crash. Rows or agents of another tenant than the one asked for are dropped and said.
- `Backoff`: exponential with jitter after failures; callers skip attempts until it is due.

Read-only with respect to the fleet: this module never touches tmux or the state dir.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from fleet_tui.errors import BadInput
from fleet_tui.model.records import (
    AgentRecord,
    BudgetBrief,
    FleetSnapshot,
    HeartbeatInfo,
    InferredState,
    ProcessInfo,
    SystemdInfo,
    Timestamp,
    TmuxInfo,
    UsageSample,
)

URL_ENV = "MOSAIC_FLEET_GATEWAY_URL"
TOKEN_ENV = "MOSAIC_FLEET_GATEWAY_TOKEN"
API_PREFIX = "/api/fleet/v1"
SNAPSHOT_SCHEMA = "mosaic.fleet.snapshot/v1"
MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_TOKEN_BYTES = 4096
MAX_HOSTS = 1000  # hosts taken from one answer; the rest are dropped with a warning
MAX_AGENTS_PER_HOST = 5000  # agents taken from one host's document; the rest likewise
MAX_BUDGET_SAMPLES = 10000  # usage samples taken from one budgets answer
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


# -- validation of answers -----------------------------------------------------------------------

# What a remote ps document may hold, by record type: unknown fields (a newer publisher's) are
# ignored instead of failing the whole answer, since contracts grow fields.
_NESTED: dict[str, type[BaseModel]] = {
    "tmux": TmuxInfo,
    "systemd": SystemdInfo,
    "process": ProcessInfo,
    "heartbeat": HeartbeatInfo,
    "inferred": InferredState,
    "budget": BudgetBrief,
}


def _known(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    names = set(model.model_fields)
    for f in model.model_fields.values():
        if f.alias:
            names.add(f.alias)
    return {k: v for k, v in data.items() if k in names}


def _agent_data(data: Any) -> Any:
    data = _known(AgentRecord, data)
    if isinstance(data, dict):
        for key, model in _NESTED.items():
            if isinstance(data.get(key), dict):
                data[key] = _known(model, data[key])
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "document"
    return f"{loc}: {err['msg']}"


class _HostRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    host: str
    tenant_id: str
    observed_at: Timestamp
    ps: dict[str, Any]
    received_at: Any = None  # gateway clock; checked by `_age`, never fails the row
    age_s: Any = None  # gateway now - received_at, when it answered


def _age(value: Any) -> float | None:
    """The gateway's `age_s` when it is a usable number (finite, not negative), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    age = float(value)
    return age if age == age and 0 <= age < 1e9 else None


@dataclass(frozen=True)
class RemoteHost:
    """One host's latest published snapshot, validated (strings not yet sanitized)."""

    tenant_id: str
    host: str
    observed_at: datetime
    snapshot: FleetSnapshot
    age_s: float | None = None  # the gateway's age of this host's data when it answered


@dataclass(frozen=True)
class GatewayAnswer:
    hosts: list[RemoteHost]
    warnings: list[str]
    fetched_at: datetime
    raw: Any = None  # the decoded answer, as received (for a cache of the last answer)


def parse_snapshot_answer(data: Any, tenant: str, fetched_at: datetime) -> GatewayAnswer:
    """Validate a `GET /snapshot` answer. Raises GatewayError(kind='invalid') for nonsense;
    drops (with a warning) single bad hosts or agents and anything of another tenant."""
    if not isinstance(data, dict):
        raise GatewayError("answer is not a JSON object", kind="invalid")
    if data.get("schema") != SNAPSHOT_SCHEMA:
        got = str(data.get("schema"))[:60]
        raise GatewayError(f"answer schema is '{got}', not {SNAPSHOT_SCHEMA}", kind="invalid")
    rows = data.get("hosts")
    if not isinstance(rows, list):
        raise GatewayError("answer has no 'hosts' list", kind="invalid")
    hosts: list[RemoteHost] = []
    warnings: list[str] = []
    seen: set[str] = set()
    if len(rows) > MAX_HOSTS:
        warnings.append(
            f"gateway: answer holds {len(rows)} hosts: only the first {MAX_HOSTS} are shown"
        )
        rows = rows[:MAX_HOSTS]
    for i, raw in enumerate(rows):
        try:
            row = _HostRow.model_validate(raw)
        except ValidationError as exc:
            warnings.append(f"gateway: hosts[{i}] invalid ({_first_error(exc)}): ignored")
            continue
        if row.tenant_id != tenant:
            warnings.append(f"gateway: hosts[{i}] belongs to another tenant than {tenant}: ignored")
            continue
        if row.host in seen:
            warnings.append(f"gateway: host {row.host[:60]} answered twice: the second ignored")
            continue
        seen.add(row.host)
        ps = dict(row.ps)
        agents_raw = ps.get("agents")
        if not isinstance(agents_raw, list):
            warnings.append(
                f"gateway: host {row.host[:60]}: its ps document has no agents list: ignored"
            )
            continue
        if len(agents_raw) > MAX_AGENTS_PER_HOST:
            warnings.append(
                f"gateway: host {row.host[:60]}: {len(agents_raw)} agents: only the first "
                f"{MAX_AGENTS_PER_HOST} are shown"
            )
            agents_raw = agents_raw[:MAX_AGENTS_PER_HOST]
        agents: list[AgentRecord] = []
        dropped = 0
        first_bad = ""
        for j, a in enumerate(agents_raw):
            try:
                rec = AgentRecord.model_validate(_agent_data(a))
            except ValidationError as exc:
                dropped += 1
                first_bad = first_bad or f"agents[{j}]: {_first_error(exc)}"
                continue
            if rec.tenant_id != tenant or rec.host != row.host:
                dropped += 1
                first_bad = first_bad or f"agents[{j}]: another tenant or host"
                continue
            agents.append(rec)
        if dropped:
            warnings.append(
                f"gateway: host {row.host[:60]}: {dropped} agent record(s) invalid, "
                f"first {first_bad[:160]}: ignored"
            )
        doc = {
            **_known(FleetSnapshot, ps),
            "tenant_id": row.tenant_id,
            "host": row.host,
            "agents": [],
            "sockets": [],
            "sources": [],
        }
        doc.setdefault("generated_at", row.observed_at)
        doc.setdefault("heartbeat_timeout_s", 30.0)
        doc.setdefault("warnings", [])
        if not isinstance(doc["warnings"], list):
            doc["warnings"] = []
        doc["warnings"] = [str(w) for w in doc["warnings"][:20]]
        try:
            snap = FleetSnapshot.model_validate(doc)
        except ValidationError as exc:
            warnings.append(
                f"gateway: host {row.host[:60]}: ps document invalid ({_first_error(exc)}): ignored"
            )
            continue
        hosts.append(
            RemoteHost(
                tenant_id=row.tenant_id,
                host=row.host,
                observed_at=row.observed_at,
                snapshot=snap.model_copy(update={"agents": agents}),
                age_s=_age(row.age_s),
            )
        )
    return GatewayAnswer(hosts=hosts, warnings=warnings, fetched_at=fetched_at)


# -- the client ----------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GatewayClient:
    """Blocking client; one request at a time per instance (callers serialize)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
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

    def __enter__(self) -> GatewayClient:
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
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON) for a 2xx answer, raises GatewayError."""
        headers = self._auth()
        content: bytes | None = None
        if body is not None:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
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

    def fetch_snapshot(self, tenant: str) -> GatewayAnswer:
        """The latest snapshot of every host of `tenant`, validated."""
        _status, data = self.request("GET", "/snapshot", params={"tenant": tenant})
        try:
            answer = parse_snapshot_answer(data, tenant, self.clock())
            return GatewayAnswer(answer.hosts, answer.warnings, answer.fetched_at, raw=data)
        except GatewayError as exc:
            raise GatewayError(
                f"gateway {self.settings.display}: {self.redact(str(exc))}", kind=exc.kind
            ) from None

    def fetch_budget_samples(self, tenant: str) -> tuple[list[UsageSample], list[str]]:
        """The latest usage sample of each account window of `tenant` (GET /budgets), every
        host's; records that do not validate are left out and named in the warnings."""
        _status, data = self.request("GET", "/budgets", params={"tenant": tenant})
        where = f"gateway {self.settings.display}"
        accounts = data.get("accounts") if isinstance(data, dict) else None
        if not isinstance(accounts, list):
            raise GatewayError(f"{where}: budgets answer without an accounts list", kind="invalid")
        samples: list[UsageSample] = []
        warnings: list[str] = []
        bad = other = 0
        first_bad = ""
        for entry in accounts[:MAX_BUDGET_SAMPLES]:
            windows = entry.get("windows") if isinstance(entry, dict) else None
            for record in windows if isinstance(windows, list) else []:
                if len(samples) >= MAX_BUDGET_SAMPLES:
                    break
                try:
                    sample = UsageSample.model_validate(record)
                except ValidationError as exc:
                    bad += 1
                    first_bad = first_bad or _first_error(exc)
                    continue
                if sample.tenant_id != tenant:  # never another tenant's rows
                    other += 1
                    continue
                samples.append(sample)
        if bad:  # one warning for all of them: a partly invalid answer is not a flood
            warnings.append(
                f"{where}: {bad} budgets sample(s) left out, first: {self.redact(first_bad)[:160]}"
            )
        if other:
            warnings.append(f"{where}: {other} budgets sample(s) of another tenant left out")
        if len(samples) >= MAX_BUDGET_SAMPLES:
            warnings.append(f"{where}: budgets answer cut at {MAX_BUDGET_SAMPLES} samples")
        return samples, warnings

    def post(self, route: str, body: Any, *, idempotency_key: str | None = None) -> int:
        status, _data = self.request(
            "POST", route, body=body, idempotency_key=idempotency_key or str(uuid.uuid4())
        )
        return status


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
