"""The budget service: loads budgets.yaml and the usage/spend ledgers, paces every account
window, decides each account's ladder rung, and builds the `BudgetReport` that `budget --json`
prints and the budget screen renders.

Each account's ladder rung steps down from the model it actually spends on: the `model` of its
latest spend record (the spend reader keeps the latest per account, checkpointed with its sums),
else the model its agents last reported in their heartbeats (`core.ladder.decide`, `current`).

Blocking (file reads): the dashboard calls it from a thread worker. The budgets file is cached by
its stat; the ledgers are read incrementally (only what was appended) and their readers' state
is checkpointed in the state dir, so a restart does not read a large ledger again. Samples from
the gateway (`add_samples`) join the local ones in memory.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fleet_tui.config.fleet import FleetConfig, configured_identity
from fleet_tui.config.paths import Located, budgets_location
from fleet_tui.core.ladder import AccountStanding, Rung, RungDecision, decide
from fleet_tui.core.pacing import (
    DAY_S,
    Series,
    WindowPace,
    pace_spend,
    pace_window,
    period_bounds,
    window_curve,
    worst,
)
from fleet_tui.model.records import (
    AgentRecord,
    BudgetBrief,
    BudgetStatus,
    FleetSnapshot,
    UsageSample,
)
from fleet_tui.present import budget_fmt
from fleet_tui.protocol.clock import format_ts
from fleet_tui.protocol.files import atomic_write, open_regular_binary, read_regular
from fleet_tui.protocol.ledger import spend_path, usage_path
from fleet_tui.sources.budgets import (
    EXAMPLE,
    AccountConfig,
    BudgetsError,
    LoadedBudgets,
    load_budgets,
)
from fleet_tui.sources.ledger_read import (
    ReadStats,
    SpendLedgerReader,
    SpendTotals,
    UsageLedgerReader,
)
from fleet_tui.sources.spool import HeartbeatSpool

if TYPE_CHECKING:
    from fleet_tui.remote.connection import GatewaySettings

BUDGET_SCHEMA = "mosaic.fleet.budget/v1"
CURVE_COLUMNS = 96
CHECKPOINT_EVERY_BYTES = 1 << 20
SPEND_TRAILING_S = DAY_S
MAX_CHECKPOINT_BYTES = 4 << 20  # a checkpoint holds sums per account and window: kilobytes
MODEL_SCAN_BYTES = 4 << 20  # the latest model of an account is near the end of the ledger
MAX_MODEL_KEYS = 10_000
MAX_HEARTBEAT_FILES = 2_000


@dataclass(frozen=True)
class AccountReport:
    tenant_id: str
    host: str
    account: str
    provider: str
    regime: str
    runtime: str | None
    pacing: str
    rapid_authorized_until: datetime | None
    windows: list[WindowPace]
    spent_usd: float | None
    ceiling_usd: float | None
    period: str | None
    rung: str | None
    rung_action: str
    rung_reason: str
    rung_until: datetime | None
    agents: list[str] | None
    max_agents: int | None
    curves: dict[str, list[float | None]] = field(default_factory=dict)
    urgent_action: str | None = None  # what urgent work gets (differs only when authorized)
    urgent_reason: str | None = None

    @property
    def binding(self) -> WindowPace | None:
        """The window that binds this account (exhausted, else the most ahead)."""
        return worst(self.windows)


@dataclass(frozen=True)
class AgentSpend:
    agent: str
    cost_usd: float
    tokens: int


@dataclass(frozen=True)
class BudgetReport:
    generated_at: datetime
    tenant_id: str
    host: str
    budgets_path: str
    budgets_found: bool
    accounts: list[AccountReport]
    spend_today: list[AgentSpend]
    warnings: list[str]
    max_agents: int | None = None
    error: str | None = None

    @property
    def example(self) -> str:
        return EXAMPLE


class BudgetSource(Protocol):
    """What the dashboard's budget screen polls (blocking; called from a thread worker)."""

    def load(self) -> BudgetReport: ...


def _model_of(line: bytes) -> tuple[str, str, float, str] | None:
    """(tenant, account, ts, model) of a spend line that names a model; None otherwise (the
    spend reader reports broken lines: this one stays quiet)."""
    if b'"model"' not in line:
        return None
    try:
        d = json.loads(line)
        model, tenant, account = d.get("model"), d.get("tenant_id"), d.get("account")
        if not all(isinstance(x, str) and x for x in (model, tenant, account)):
            return None
        when = datetime.fromisoformat(d["ts"])
        if when.tzinfo is None:
            return None
        return tenant, account, when.timestamp(), model.strip()[:255]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class ModelSpendReader(SpendLedgerReader):
    """The spend reader, plus the model of each account's latest spend record that names one
    (`latest_model`). Only new bytes are looked at, and of a large read only the last
    MODEL_SCAN_BYTES: the latest record of a busy account is there."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.latest_model: dict[tuple[str, str], tuple[float, str]] = {}

    def read(self) -> ReadStats:
        start = self.cursor.offset
        stats = super().read()
        if stats.restarted:
            self.latest_model.clear()
            start = 0
        if self.cursor.offset > start:
            self._scan(start, self.cursor.offset)
        return stats

    def model(self, tenant: str, account: str) -> str | None:
        found = self.latest_model.get((tenant, account))
        return found[1] if found else None

    def _scan(self, start: int, end: int) -> None:
        try:
            with open_regular_binary(self.path) as f:
                if os.fstat(f.fileno()).st_ino != self.cursor.inode:
                    return  # replaced since the sums were read: the next read restarts
                begin = max(start, end - MODEL_SCAN_BYTES)
                f.seek(begin)
                data = f.read(end - begin)
        except OSError:
            return
        lines = data.split(b"\n")
        if begin > start and lines:
            lines = lines[1:]  # cut mid-line
        for line in lines:
            found = _model_of(line)
            if found is None:
                continue
            tenant, account, ts, model = found
            key = (tenant, account)
            old = self.latest_model.get(key)
            if old is None and len(self.latest_model) >= MAX_MODEL_KEYS:
                continue
            if old is None or ts >= old[0]:
                self.latest_model[key] = (ts, model)

    def checkpoint(self) -> dict[str, Any]:
        data = super().checkpoint()
        data["latest_model"] = [[t, a, ts, m] for (t, a), (ts, m) in self.latest_model.items()]
        return data

    def restore(self, data: dict[str, Any]) -> bool:
        if not super().restore(data):
            return False
        self.latest_model = {}
        try:
            for t, a, ts, m in data["latest_model"]:
                if isinstance(t, str) and isinstance(a, str) and isinstance(m, str):
                    self.latest_model[(t, a)] = (float(ts), m)
        except (KeyError, TypeError, ValueError):
            # a checkpoint from before models were kept: look at the end of what it covers
            self.latest_model = {}
            self._scan(0, self.cursor.offset)
        return True


class BudgetService:
    """Budgets + ledgers -> `BudgetReport`, with caches that make a refresh cheap."""

    def __init__(
        self,
        budgets: Located,
        state_dir: Path,
        *,
        tenant_id: str | None = None,
        host: str | None = None,
        identity: Callable[[], tuple[str | None, str | None]] | None = None,
        checkpoints: bool = True,
    ) -> None:
        """`tenant_id` and `host` are the fallbacks used when the budgets file names none;
        `identity` gives them on first use instead (the dashboard: its roster is parsed by the
        poll thread, not on the way to the first frame)."""
        self.budgets_at = budgets
        self.state_dir = state_dir
        self._identity = identity
        self._tenant_fallback = tenant_id
        self._host_fallback = host
        self.checkpoints = checkpoints
        self.usage = UsageLedgerReader(usage_path(state_dir))
        self.spend = ModelSpendReader(spend_path(state_dir))
        self.gateway: dict[tuple[str, str, str], Series] = {}
        self._gateway_seen: set[tuple[str, str, str, float, float]] = set()
        self._budgets: LoadedBudgets | None = None
        self._budgets_key: tuple[int, int, int] | None = None
        self._since_save = {"usage": 0, "spend": 0}
        if checkpoints:
            self._restore("usage", self.usage)
            self._restore("spend", self.spend)

    def _resolve_identity(self) -> None:
        identity, self._identity = self._identity, None
        if identity is not None:
            tenant, host = identity()
            self._tenant_fallback = self._tenant_fallback or tenant
            self._host_fallback = self._host_fallback or host

    @property
    def tenant_fallback(self) -> str | None:
        self._resolve_identity()
        return self._tenant_fallback

    @tenant_fallback.setter
    def tenant_fallback(self, tenant: str | None) -> None:
        self._identity = None
        self._tenant_fallback = tenant

    @property
    def host_fallback(self) -> str:
        self._resolve_identity()
        if not self._host_fallback:
            self._host_fallback = socket.gethostname()
        return self._host_fallback

    # -- checkpoints ------------------------------------------------------------------------
    def _ckpt_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.jsonl.checkpoint"

    def _restore(self, name: str, reader: UsageLedgerReader | SpendLedgerReader) -> None:
        try:
            # A checkpoint is a cache: a FIFO, a device or a huge file there is ignored.
            data = json.loads(read_regular(self._ckpt_path(name), MAX_CHECKPOINT_BYTES))
        except (OSError, ValueError):
            return
        if isinstance(data, dict):
            reader.restore(data)

    def _save(self, name: str, reader: UsageLedgerReader | SpendLedgerReader) -> None:
        try:
            atomic_write(self._ckpt_path(name), json.dumps(reader.checkpoint()), mode=0o600)
            self._since_save[name] = 0
        except OSError:
            pass  # a read-only state dir: the next start reads the ledger again

    # -- inputs -----------------------------------------------------------------------------
    def load_budgets(self) -> LoadedBudgets | None:
        """The budgets (cached by stat), None when the default file does not exist."""
        path = self.budgets_at.path
        try:
            st = path.stat()
        except FileNotFoundError:
            self._budgets, self._budgets_key = None, None
            if self.budgets_at.explicit:
                raise BudgetsError(f"{path}: budgets file not found") from None
            return None
        except OSError as exc:
            raise BudgetsError(f"{path}: cannot read budgets: {exc.strerror}") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._budgets is not None and key == self._budgets_key:
            return self._budgets
        loaded = load_budgets(path)
        self._budgets, self._budgets_key = loaded, key
        return loaded

    def read_ledgers(self) -> None:
        """Read what was appended to the ledgers since the last call."""
        for name, reader in (("usage", self.usage), ("spend", self.spend)):
            stats = reader.read()
            self._since_save[name] += stats.bytes
            if self.checkpoints and (
                self._since_save[name] >= CHECKPOINT_EVERY_BYTES or stats.restarted
            ):
                self._save(name, reader)

    def add_samples(self, samples: Iterable[UsageSample]) -> int:
        """Usage samples from elsewhere (the gateway's budgets): kept in memory, paced with
        the local ones. Returns how many were taken (out-of-range ones are left out)."""
        n = 0
        for s in samples:
            if not 0.0 <= s.used_percent <= 100.0:
                continue
            seen = (s.tenant_id, s.account, s.window, s.observed_at.timestamp(), s.used_percent)
            if seen in self._gateway_seen:  # the gateway answers its latest sample each time
                continue
            self._gateway_seen.add(seen)
            key = (s.tenant_id, s.account, s.window)
            series = self.gateway.setdefault(key, Series())
            series.add(
                s.observed_at.timestamp(),
                s.used_percent,
                s.resets_at.timestamp() if s.resets_at else None,
                s.reset_confidence,
                float(s.window_minutes) if s.window_minutes else None,
            )
            n += 1
        return n

    def load(self, now: datetime | None = None) -> BudgetReport:
        """Read everything new and build the report (BudgetsError when the file is bad)."""
        loaded = self.load_budgets()
        self.read_ledgers()
        return self.report(loaded, now or datetime.now(UTC))

    # -- the report -------------------------------------------------------------------------
    def _series(self, tenant: str, account: str) -> dict[str, Series]:
        out: dict[str, Series] = {}
        for src in (self.usage.series, self.gateway):
            for (t, a, w), s in src.items():
                if t != tenant or a != account:
                    continue
                if w in out:  # local and gateway samples of the same window: merge
                    merged = Series()
                    for x in (out[w], s):
                        x.ensure_sorted()
                        for i in range(len(x)):
                            merged.add(x.t[i], x.used[i], x.resets[i], x.confidence, x.minutes)
                    out[w] = merged
                else:
                    out[w] = s
        return out

    def report(self, loaded: LoadedBudgets | None, now: datetime) -> BudgetReport:
        warnings: list[str] = []
        budgets_path = str(self.budgets_at.path)
        if loaded is None:
            tenant = self.tenant_fallback or ""
            host = self.host_fallback
        else:
            tenant = loaded.config.tenant_id
            host = loaded.config.host or self.host_fallback
            warnings += loaded.warnings
        warnings += self.usage.warnings
        warnings += self.spend.warnings
        accounts: list[AccountReport] = []
        if loaded is not None:
            accounts = self._accounts(loaded, tenant, host, now, warnings)
        others = {t for (t, _a, _w) in self.usage.series if t != tenant}
        if others:
            warnings.append(
                f"{self.usage.path}: samples of other tenants ignored "
                f"({', '.join(sorted(others)[:3])})"
            )
        today = int(now.timestamp() // DAY_S)
        spend_today = sorted(
            (
                AgentSpend(agent, round(v[0], 6), int(v[1]))
                for (t, agent, day), v in self.spend.totals.by_agent_day.items()
                if t == tenant and day == today
            ),
            key=lambda s: (-s.cost_usd, -s.tokens, s.agent),
        )
        return BudgetReport(
            generated_at=now,
            tenant_id=tenant,
            host=host,
            budgets_path=budgets_path,
            budgets_found=loaded is not None,
            accounts=accounts,
            spend_today=spend_today,
            warnings=warnings,
            max_agents=loaded.config.concurrency.max_agents if loaded else None,
        )

    def _accounts(
        self, loaded: LoadedBudgets, tenant: str, host: str, now: datetime, warnings: list[str]
    ) -> list[AccountReport]:
        cfg = loaded.config
        known = {a.id for a in cfg.accounts}
        for (t, a), line in sorted(self.usage.first_line.items(), key=lambda kv: kv[1]):
            if t == tenant and a not in known:
                warnings.append(
                    f"{self.usage.path}:{line}: account: '{a}' is not in {loaded.path} "
                    "(its samples are left out)"
                )
        now_h = now.timestamp() / 3600.0
        paced: list[
            tuple[AccountConfig, list[WindowPace], float | None, dict[str, list[float | None]]]
        ] = []
        for acct in cfg.accounts:
            windows: list[WindowPace] = []
            curves: dict[str, list[float | None]] = {}
            spent: float | None = None
            if acct.regime == "api":
                start, end = period_bounds(acct.period, now)
                spent = self.spend.totals.spent(tenant, acct.id, start.timestamp() / 3600, now_h)
                # The trailing day, but never before the period began: last period's spend
                # divided by this period's first hours would be a wildly wrong rate.
                trailing = self.spend.totals.spent(
                    tenant,
                    acct.id,
                    max(now_h - SPEND_TRAILING_S / 3600, start.timestamp() / 3600),
                    now_h,
                )
                windows.append(
                    pace_spend(
                        acct.period, acct.ceiling_usd, spent, trailing, SPEND_TRAILING_S, now
                    )
                )
                if acct.ceiling_usd:
                    curves[acct.period] = spend_curve(
                        self.spend.totals,
                        tenant,
                        acct.id,
                        acct.ceiling_usd,
                        start,
                        end,
                        now,
                        CURVE_COLUMNS,
                    )
            else:
                series = self._series(tenant, acct.id)
                names = [w.name for w in acct.windows] + sorted(
                    n for n in series if n not in {w.name for w in acct.windows}
                )
                for name in names:
                    wcfg = next((w for w in acct.windows if w.name == name), None)
                    s = series.get(name)
                    wp = pace_window(
                        name,
                        wcfg.minutes if wcfg else None,
                        s,
                        now,
                        resets_at=wcfg.resets_at if wcfg else None,
                        reset_confidence=(wcfg.confidence if wcfg and wcfg.resets_at else None),
                    )
                    windows.append(wp)
                    for note in wp.notes:
                        if "rolled " in note or "clock skew" in note:
                            warnings.append(f"{acct.id} {name}: {note}")
                    if wp.window_start is not None and wp.resets_at is not None:
                        curves[name] = window_curve(
                            s, wp.window_start, wp.resets_at, now, CURVE_COLUMNS
                        )
            paced.append((acct, windows, spent, curves))

        standings = {acct.id: _standing(acct, windows, now) for acct, windows, _s, _c in paced}
        ladder = [Rung(name, account) for name, account in loaded.ladder]
        models = self.current_models(cfg.accounts, tenant)
        out: list[AccountReport] = []
        for acct, windows, spent, curves in paced:
            model = models.get(acct.id)
            decision: RungDecision = decide(acct.id, ladder, standings, now, current=model)
            urgent = decide(acct.id, ladder, standings, now, urgent=True, current=model)
            if acct.regime == "api" and acct.ceiling_usd is None:
                decision = RungDecision(
                    decision.rung, decision.action, "no ceiling_usd set: spend is not limited"
                )
            out.append(
                AccountReport(
                    tenant_id=tenant,
                    host=host,
                    account=acct.id,
                    provider=acct.provider,
                    regime=acct.regime,
                    runtime=acct.runtime,
                    pacing=acct.pacing,
                    rapid_authorized_until=acct.rapid_authorized_until,
                    windows=windows,
                    spent_usd=round(spent, 6) if spent is not None else None,
                    ceiling_usd=acct.ceiling_usd,
                    period=acct.period if acct.regime == "api" else None,
                    rung=decision.rung,
                    rung_action=decision.action,
                    rung_reason=decision.reason,
                    rung_until=decision.until,
                    agents=acct.agents,
                    max_agents=acct.max_agents,
                    curves=curves,
                    urgent_action=urgent.action,
                    urgent_reason=urgent.reason,
                )
            )
        return out

    def current_models(self, accounts: Sequence[AccountConfig], tenant: str) -> dict[str, str]:
        """Account id -> the model it spends on now: its latest spend record's, else the one
        its agents last reported (the newest heartbeat of an agent on that account)."""
        out: dict[str, str] = {}
        for acct in accounts:
            model = self.spend.model(tenant, acct.id)
            if model:
                out[acct.id] = model
        if len(out) < len(accounts):
            for acct_id, model in self._heartbeat_models(accounts, tenant).items():
                out.setdefault(acct_id, model)
        return out

    def _heartbeat_models(self, accounts: Sequence[AccountConfig], tenant: str) -> dict[str, str]:
        spool = HeartbeatSpool(self.state_dir)
        try:
            names = sorted(
                e.name[: -len(".json")]
                for e in os.scandir(spool.heartbeats)
                # regular files only: opening a FIFO planted there would block the report
                if e.name.endswith(".json")
                and not e.name.startswith(".")
                and e.is_file(follow_symlinks=False)
            )[:MAX_HEARTBEAT_FILES]
        except OSError:
            return {}
        latest: dict[str, tuple[datetime, str]] = {}
        for name in names:
            hb = spool.read_heartbeat(name).heartbeat
            if hb is None or hb.tenant_id != tenant or not hb.model:
                continue
            acct = _account_of(hb.agent, hb.runtime, accounts)
            if acct is None:
                continue
            seen = latest.get(acct)
            if seen is None or hb.ts > seen[0]:
                latest[acct] = (hb.ts, hb.model)
        return {a: m for a, (_t, m) in latest.items()}


def _account_of(agent: str, runtime: str | None, accounts: Sequence[AccountConfig]) -> str | None:
    """The account (of budgets.yaml) an agent spends from, as `account_for` decides it."""
    for a in accounts:
        if a.agents and agent in a.agents:
            return str(a.id)
    if not runtime:
        return None
    matching = [a for a in accounts if a.runtime == runtime]
    chosen = [a for a in matching if not a.agents] or matching
    return str(chosen[0].id) if chosen else None


def spend_curve(
    totals: SpendTotals,
    tenant: str,
    account: str,
    ceiling_usd: float,
    start: datetime,
    end: datetime,
    now: datetime,
    columns: int,
) -> list[float | None]:
    """An api account's spend over its period as used % of the ceiling per column (the chart
    of a subscription window, from the hourly sums): cumulative, None after `now`."""
    t0, t1, now_t = start.timestamp(), end.timestamp(), now.timestamp()
    span = max(t1 - t0, 1.0)
    per_col = [0.0] * columns
    for (t, a, h), v in totals.by_hour.items():
        at = h * 3600.0
        if t != tenant or a != account or at < t0 or at >= t1:
            continue
        per_col[min(int((at - t0) / span * columns), columns - 1)] += v[0]
    out: list[float | None] = []
    total = 0.0
    for c in range(columns):
        if t0 + span * c / columns > now_t:
            out.append(None)
            continue
        total += per_col[c]
        out.append(min(total / ceiling_usd * 100.0, 100.0))
    return out


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{v:.1f} %"


def _standing(acct: AccountConfig, windows: Sequence[WindowPace], now: datetime) -> AccountStanding:
    """What the ladder needs of an account: exhausted windows and when they all reset; the
    window most ahead of pace."""
    exhausted = [w for w in windows if w.status == "exhausted"]
    ahead = [w for w in windows if w.status == "ahead"]
    if exhausted:
        resets = [w.resets_at for w in exhausted]
        available = None if any(r is None for r in resets) else max(r for r in resets if r)
        what = (
            f"ceiling ${acct.ceiling_usd:g} reached this {acct.period}"
            if acct.regime == "api"
            else " and ".join(f"{w.name} window exhausted" for w in exhausted)
        )
        return AccountStanding(
            acct.id,
            exhausted=True,
            exhausted_why=f"{acct.id}: {what}",
            available_at=available,
            pacing=acct.pacing,
            rapid_authorized_until=acct.rapid_authorized_until,
        )
    if ahead:
        w = max(ahead, key=lambda w: w.pace or 0.0)
        left = (w.resets_at - now).total_seconds() if w.resets_at is not None else None
        allowed = budget_fmt.allowed(w.allowed_per_day, w.used_percent, left, w.window_minutes)
        why = (
            f"{w.name} {_pct(w.used_percent)} used vs {_pct(w.ideal_used_percent)} ideal "
            f"(even rate {allowed})"
        )
        return AccountStanding(
            acct.id,
            ahead=True,
            ahead_why=why,
            pacing=acct.pacing,
            rapid_authorized_until=acct.rapid_authorized_until,
        )
    return AccountStanding(
        acct.id, pacing=acct.pacing, rapid_authorized_until=acct.rapid_authorized_until
    )


# -- the fleet table's cell -------------------------------------------------------------------


def account_for(agent: AgentRecord, accounts: Sequence[AccountReport]) -> AccountReport | None:
    """The account an agent spends from: one that lists it in `agents`, else the first whose
    runtime is the agent's (accounts without an `agents` list first)."""
    for a in accounts:
        if a.agents and agent.name in a.agents:
            return a
    if not agent.runtime:
        return None
    matching = [a for a in accounts if a.runtime == agent.runtime]
    open_ = [a for a in matching if not a.agents]
    chosen = open_ or matching
    return chosen[0] if chosen else None


def briefs_for(report: BudgetReport, agents: Iterable[AgentRecord]) -> dict[str, BudgetBrief]:
    """Agent name -> the one-line budget of its account (agents without an account: absent)."""
    out: dict[str, BudgetBrief] = {}
    for agent in agents:
        acct = account_for(agent, report.accounts)
        if acct is None:
            continue
        w = acct.binding
        out[agent.name] = BudgetBrief(
            account=acct.account,
            window=w.name if w else None,
            used_percent=round(w.used_percent, 1) if w and w.used_percent is not None else None,
            pace=round(w.pace, 2) if w and w.pace is not None else None,
            status=w.status if w else BudgetStatus.UNKNOWN,
            rung=acct.rung,
        )
    return out


# -- budget --json v1 -------------------------------------------------------------------------


def _ts(t: datetime | None) -> str | None:
    return format_ts(t) if t is not None else None


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


def window_json(w: WindowPace) -> dict[str, Any]:
    return {
        "name": w.name,
        "window_minutes": _r(w.window_minutes, 1),
        "used_percent": _r(w.used_percent),
        "resets_at": _ts(w.resets_at),
        "reset_confidence": w.reset_confidence,
        "observed_at": _ts(w.observed_at),
        "ideal_used_percent": _r(w.ideal_used_percent),
        "pace": _r(w.pace, 3),
        "allowed_per_day": _r(w.allowed_per_day, 3),
        "recent_rate_per_day": _r(w.recent_rate_per_day, 3),
        "projected_at_reset": _r(w.projected_at_reset),
        "exhaust_at": _ts(w.exhaust_at),
        "status": w.status,
        "window_start": _ts(w.window_start),
        "reset_rolled": w.reset_rolled,
        "notes": list(w.notes),
    }


def report_json(report: BudgetReport) -> dict[str, Any]:
    """`budget --json` v1 (DESIGN.md), with grown fields (rung_action, spend_today, ...)."""
    return {
        "schema": BUDGET_SCHEMA,
        "generated_at": format_ts(report.generated_at),
        "tenant_id": report.tenant_id,
        "host": report.host,
        "budgets_path": report.budgets_path,
        "budgets_found": report.budgets_found,
        "accounts": [
            {
                "tenant_id": a.tenant_id,
                "host": a.host,
                "account": a.account,
                "provider": a.provider,
                "regime": a.regime,
                "runtime": a.runtime,
                "pacing": a.pacing,
                "rapid_authorized_until": _ts(a.rapid_authorized_until),
                "windows": [window_json(w) for w in a.windows],
                "spent_usd": a.spent_usd,
                "ceiling_usd": a.ceiling_usd,
                "period": a.period,
                "rung": a.rung,
                "rung_action": a.rung_action,
                "rung_reason": a.rung_reason,
                "rung_until": _ts(a.rung_until),
                "urgent": {"action": a.urgent_action, "reason": a.urgent_reason},
                "agents": a.agents,
                "max_agents": a.max_agents,
            }
            for a in report.accounts
        ],
        "concurrency": {"max_agents": report.max_agents},
        "spend_today": [
            {"agent": s.agent, "cost_usd": s.cost_usd, "tokens": s.tokens}
            for s in report.spend_today
        ],
        "warnings": report.warnings,
    }


GATEWAY_BUDGETS_EVERY_S = 30.0


def fetch_gateway_samples(
    service: BudgetService, settings: GatewaySettings, tenant: str
) -> list[str]:
    """Add the gateway's latest usage samples of `tenant` (every host's) to the service;
    returns warnings (the gateway unreachable or answering nonsense is one of them)."""
    from fleet_tui.remote.client import GatewayClient
    from fleet_tui.remote.connection import GatewayError

    try:
        with GatewayClient(settings) as client:
            samples, warnings = client.fetch_budget_samples(tenant)
    except GatewayError as exc:
        return [f"{exc}; budgets from this host's ledgers only"]
    service.add_samples(samples)
    return warnings


class LiveBudgetSource:
    """The dashboard's budget source: one long-lived service; errors become a degraded report."""

    def __init__(
        self,
        budgets: Located,
        state_dir: Path,
        *,
        tenant_id: str | None = None,
        host: str | None = None,
        identity: Callable[[], tuple[str | None, str | None]] | None = None,
        gateway: GatewaySettings | None = None,
    ) -> None:
        self.service = BudgetService(
            budgets, state_dir, tenant_id=tenant_id, host=host, identity=identity
        )
        self.gateway = gateway  # GatewaySettings: its budgets are asked every 30 s
        self._gateway_at = float("-inf")
        self._gateway_warnings: list[str] = []
        self._gateway_thread: threading.Thread | None = None
        # The budget screen's worker and the fleet poll (table cells) share this service.
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: FleetConfig) -> LiveBudgetSource:
        """For the dashboard: the budgets of the environment, the tenant of the roster (else
        the login name), so that spend still shows while the budgets file is broken."""
        # not strict: a broken roster is the fleet screen's to report; read when first needed
        return cls(
            budgets_location(),
            config.state_dir,
            identity=lambda: configured_identity(config, strict=False),
            gateway=config.gateway,
        )

    def briefs(self, snapshot: FleetSnapshot, now: datetime) -> dict[str, BudgetBrief]:
        """The fleet table's budget cells (a `service.BudgetProvider`); raises with the reason
        when the budgets cannot be read (the poller shows the source degraded)."""
        report = self.load()
        if report.error:
            raise RuntimeError(report.error)
        # Only this host's rows: a row is local when it did not come from the gateway, never
        # because its host text matches ours (a remote row can carry any host name).
        return briefs_for(report, (a for a in snapshot.agents if not a.remote))

    def load(self) -> BudgetReport:
        with self._lock:
            return self._load()

    def _ask_gateway(self) -> None:
        """Start a fetch of the gateway's samples when one is due; never waits for it (the
        poll thread calls this: a hung gateway must not hold up local polls)."""
        tenant = self.service.tenant_fallback
        if self.gateway is None or tenant is None:
            return
        tick = time.monotonic()
        running = self._gateway_thread is not None and self._gateway_thread.is_alive()
        if running or tick - self._gateway_at < GATEWAY_BUDGETS_EVERY_S:
            return
        self._gateway_at = tick
        self._gateway_thread = threading.Thread(
            target=self._fetch_gateway,
            args=(self.gateway, tenant),
            name="gateway-budgets",
            daemon=True,
        )
        self._gateway_thread.start()

    def _fetch_gateway(self, gateway: GatewaySettings, tenant: str) -> None:
        from fleet_tui.remote.client import GatewayClient
        from fleet_tui.remote.connection import GatewayError

        try:
            with GatewayClient(gateway) as client:
                samples, warnings = client.fetch_budget_samples(tenant)
        except GatewayError as exc:
            self._gateway_warnings = [f"{exc}; budgets from this host's ledgers only"]
            return
        except Exception as exc:  # a fetch thread never dies silently
            self._gateway_warnings = [f"gateway budgets: {type(exc).__name__}: {exc}"]
            return
        with self._lock:
            self.service.add_samples(samples)
        self._gateway_warnings = warnings

    def _load(self) -> BudgetReport:
        self._ask_gateway()
        report = self._load_local()
        report.warnings.extend(self._gateway_warnings)
        return report

    def _load_local(self) -> BudgetReport:
        now = datetime.now(UTC)
        try:
            report = self.service.load(now)
            self.service.tenant_fallback = report.tenant_id or self.service.tenant_fallback
            return report
        except BudgetsError as exc:
            self.service.read_ledgers()
            base = self.service.report(None, now)
            return BudgetReport(
                generated_at=now,
                tenant_id=base.tenant_id,
                host=base.host,
                budgets_path=base.budgets_path,
                budgets_found=True,
                accounts=[],
                spend_today=base.spend_today,
                warnings=base.warnings,
                error=str(exc),
            )


__all__ = [
    "BUDGET_SCHEMA",
    "AccountReport",
    "AgentSpend",
    "BudgetReport",
    "BudgetService",
    "BudgetSource",
    "LiveBudgetSource",
    "briefs_for",
    "report_json",
]
