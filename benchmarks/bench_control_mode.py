"""Benchmark: tmux control mode (`tmux -C`) as the dashboard's event source, against what the
dashboard does (`list-panes -a -F PANE_FORMAT` every 2 s). Research only: nothing in fleet_tui/
uses control mode; this script measures whether it should (issue 16, /work/brief/ctl/FINDINGS.md).

Run from the repository root:

    .venv/bin/python benchmarks/bench_control_mode.py notify
    .venv/bin/python benchmarks/bench_control_mode.py cpu --agents 50 300 --seconds 30 --rounds 2
    .venv/bin/python benchmarks/bench_control_mode.py latency --agents 50 --trials 12
    .venv/bin/python benchmarks/bench_control_mode.py failures

The control client never attaches to an agent's session: it attaches to a hidden session of its
own, `__fleet_ctl` (a `sleep` pane, `window-size manual`, 10x2), with `-f read-only,no-output`,
stdin a pipe. Observers (`cpu`), each a separate process so its CPU and its reaped children's
(tmux clients) are read from `os.times()`; the tmux server's CPU is read from /proc:

- `none`: nothing watches (baseline of the server with its panes).
- `poll`: `list-panes -a -F PANE_FORMAT` every 2 s, lines split into fields (what the dashboard's
  tmux source does, without the join).
- `ctl`: the control client; a reader thread reads its lines; a lifecycle notification
  (`%sessions-changed`, `%unlinked-window-*`, `%window-*`, `%session-renamed`) asks for one
  `list-panes`, at most every 50 ms. No periodic poll.
- `sub`: the control client with a format subscription (`refresh-client -B`, tmux 3.2+) whose
  format walks every pane of every session (`#{S:#{W:#{P:PANE_FIELDS}}}`): tmux evaluates it
  once a second in the server and pushes `%subscription-changed` only when the text changed.
- `sub-lite`: the same without the activity stamps (`session_activity`, `window_activity`), so a
  printing pane does not make it push.
- `ctl-poll`: the same listing as `poll` every 2 s, written to the control client's stdin (no
  tmux process per poll; the answer is the lines between `%begin` and `%end`).
- `sub-min`: the control client's lifecycle events plus the smallest activity subscription,
  `#{S:#{W:#{window_id}=#{window_activity};}}` (which windows printed, nothing else).

Loads: `idle` (every agent pane runs `sleep`) and `print` (every agent pane prints 10 lines/s,
a perl loop). Rows alternate observers within a round; medians over rounds are printed.

Every tmux server runs on a socket inside a temporary folder (`TMUX` unset): the user's own
servers are never touched; on exit everything started is stopped and the folder removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _lab import TmuxLab, connects, cpu_ticks  # noqa: E402

from fleet_tui.sources.tmux import PANE_FIELDS, PANE_FORMAT  # noqa: E402

CTL = "__fleet_ctl"
HZ = os.sysconf("SC_CLK_TCK")
POLL_S = 2.0
PRINTER = 'exec perl -e \'$|=1; for($i=0;;$i++){print "agent line $i " . ("x" x 60) . "\\n"; select(undef,undef,undef,0.1)}\''
SLEEPER = "exec sleep 3600"
LIFECYCLE = (
    "%sessions-changed",
    "%unlinked-window-add",
    "%unlinked-window-close",
    "%window-add",
    "%window-close",
    "%session-renamed",
)
ACTIVITY = ("session_activity", "window_activity")
# the smallest useful subscription: which window printed last, one entry per window
MIN_FORMAT = "#{S:#{W:#{window_id}=#{window_activity};}}"


def sub_format(fields: tuple[str, ...]) -> str:
    """One text for the whole server: panes separated by `;`, fields by `|` (not `,`: inside
    `#{S:a,b}` a comma starts the format for the CURRENT session). Research only: a product would
    need a separator no agent can type; see FINDINGS."""
    pane = "|".join("#{" + f + "}" for f in fields)
    return "#{S:#{W:#{P:" + pane + ";}}}"


def ctl_quote(text: str) -> str:
    """A double-quoted tmux argument for a control client's stdin (one line): control bytes as
    octal escapes (PANE_FORMAT's scrubbing class holds raw 0x01-0x1f, newline included)."""
    out = []
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        elif ch in '"\\$':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------------------- fleet set-up


def make_fleet(lab: TmuxLab, sock: Path, n: int, printing: bool) -> None:
    lab.sockets.add(sock)
    cmd = PRINTER if printing else SLEEPER
    chunk = 40
    for start in range(0, n, chunk):
        args: list[str] = []
        for i in range(start, min(n, start + chunk)):
            if args:
                args.append(";")
            args += ["new-session", "-d", "-s", f"agent{i:04d}", "-x", "120", "-y", "40", cmd]
        lab.run(sock, *args)
    # a few agents with their size pinned, as fleet-tui does for the windows it creates
    for i in range(0, n, 7):
        lab.run(sock, "set-option", "-w", "-t", f"=agent{i:04d}:", "window-size", "manual")
    make_ctl_session(lab, sock)


def make_ctl_session(lab: TmuxLab, sock: Path) -> None:
    lab.run(sock, "new-session", "-d", "-s", CTL, "-x", "10", "-y", "2", SLEEPER)
    lab.run(sock, "set-option", "-w", "-t", f"={CTL}:", "window-size", "manual")


def server_pid(lab: TmuxLab, sock: Path) -> int:
    return int(lab.run(sock, "display-message", "-p", "#{pid}").stdout.strip())


def sizes(lab: TmuxLab, sock: Path) -> dict[str, str]:
    out = lab.run(
        sock,
        "list-windows",
        "-a",
        "-F",
        "#{session_name}:#{window_index} #{window_width}x#{window_height} #{session_attached}",
    ).stdout
    return {ln.split()[0]: " ".join(ln.split()[1:]) for ln in out.splitlines()}


# --------------------------------------------------------------------------- control client


class ControlClient:
    """`tmux -S SOCK -C attach -t =__fleet_ctl: -f read-only,no-output` with a reader thread
    that timestamps every line it gets."""

    def __init__(self, tmux: str, sock: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [tmux, "-S", str(sock), "-C", "attach", "-t", f"={CTL}:", "-f", "read-only,no-output"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,  # buffered: an unbuffered pipe is read one byte per syscall
        )
        self.lines: list[tuple[float, str]] = []
        self.nbytes = 0
        self.eof_at: float | None = None
        self.cond = threading.Condition()
        self.on_line: Any = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            now = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.nbytes += len(raw)
            with self.cond:
                self.lines.append((now, line))
                self.cond.notify_all()
            if self.on_line is not None:
                self.on_line(now, line)
        with self.cond:
            self.eof_at = time.monotonic()
            self.cond.notify_all()

    def attached(self, timeout: float = 5.0) -> bool:
        """Wait for `%session-changed`: a command written before it may run before the attach
        and fail (`no current client`), so a subscription sent too early is lost."""
        return self.wait_for(lambda ln: ln.startswith("%session-changed"), 0.0, timeout) is not None

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, pred: Any, since: float, timeout: float, start: int = 0) -> float | None:
        """Time of the first line after `since` (and at index >= `start`) for which pred(line)
        holds; lines already looked at are not looked at again."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, ln in self.lines[start:]:
                    if t >= since and pred(ln):
                        return t
                start = max(start, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0 or self.eof_at is not None:
                    return None
                self.cond.wait(left)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()  # EOF on stdin: tmux detaches the control client
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- observer process


def _cpu_since(t0: Any) -> float:
    """CPU seconds of this process and its reaped children (the tmux clients) since `t0`."""
    t = os.times()
    return (t.user + t.system + t.children_user + t.children_system) - (
        t0.user + t0.system + t0.children_user + t0.children_system
    )


def observe(mode: str, sock: Path, seconds: float) -> dict[str, Any]:
    tmux = os.environ.get("BENCH_TMUX", "tmux")
    t_start = os.times()  # after the imports: the observer's start-up is not what is measured
    lists = 0
    list_rows = 0
    events = 0
    pushes = 0
    push_bytes = 0

    def list_once() -> None:
        nonlocal lists, list_rows
        res = subprocess.run(
            [tmux, "-S", str(sock), "list-panes", "-a", "-F", PANE_FORMAT],
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
        )
        rows = [ln.split("\x1f") for ln in res.stdout.splitlines()]
        lists += 1
        list_rows += len(rows)

    t_end = time.monotonic() + seconds
    if mode == "none":
        time.sleep(seconds)
    elif mode == "poll":
        nxt = time.monotonic()
        while nxt < t_end:
            list_once()
            nxt += POLL_S
            time.sleep(max(0.0, min(nxt, t_end) - time.monotonic()))
    else:
        wake = threading.Event()

        def on_line(_t: float, line: str) -> None:
            nonlocal events, pushes, push_bytes
            if line.startswith(LIFECYCLE):
                events += 1
                wake.set()
            elif line.startswith("%subscription-changed"):
                pushes += 1
                push_bytes += len(line)
                body = line.split(" : ", 1)[-1]
                _ = [p.split("|") for p in body.split(";") if p]

        cc = ControlClient(tmux, sock)
        cc.on_line = on_line
        if mode == "ctl-poll":
            cc.attached()
            command = "list-panes -a -F " + ctl_quote(PANE_FORMAT)
            nxt = time.monotonic()
            while nxt < t_end:
                t0 = time.monotonic()
                start = len(cc.lines)
                cc.send(command)
                if cc.wait_for(lambda ln: ln.startswith(("%end", "%error")), t0, 5, start) is None:
                    break
                block = [ln for _t, ln in cc.lines[start:]]
                try:
                    b = next(i for i, ln in enumerate(block) if ln.startswith("%begin"))
                    e = next(i for i, ln in enumerate(block) if ln.startswith(("%end", "%error")))
                except StopIteration:
                    break
                rows = [ln.split("\x1f") for ln in block[b + 1 : e]]
                lists += 1
                list_rows += len(rows)
                nxt += POLL_S
                time.sleep(max(0.0, min(nxt, t_end) - time.monotonic()))
        if mode == "sub-min":
            cc.attached()
            cc.send(f"refresh-client -B 'fleet::{MIN_FORMAT}'")
        if mode in ("sub", "sub-lite"):
            fields = (
                PANE_FIELDS if mode == "sub" else tuple(f for f in PANE_FIELDS if f not in ACTIVITY)
            )
            cc.attached()
            cc.send(f"refresh-client -B 'fleet::{sub_format(fields)}'")
        while True:
            left = t_end - time.monotonic()
            if left <= 0:
                break
            if wake.wait(left):
                time.sleep(0.05)  # debounce a burst of notifications into one listing
                wake.clear()
                list_once()
        cc.close()
        lines = len(cc.lines)
        del cc
        return {
            "mode": mode,
            "cpu_s": _cpu_since(t_start),
            "lists": lists,
            "rows": list_rows,
            "events": events,
            "pushes": pushes,
            "push_bytes": push_bytes,
            "lines": lines,
        }
    return {
        "mode": mode,
        "cpu_s": _cpu_since(t_start),
        "lists": lists,
        "rows": list_rows,
        "events": events,
        "pushes": pushes,
        "push_bytes": push_bytes,
        "lines": 0,
    }


def run_observer(lab: TmuxLab, sock: Path, mode: str, seconds: float) -> dict[str, Any]:
    spid = server_pid(lab, sock)
    s0 = cpu_ticks(spid)[0]
    w0 = time.monotonic()
    res = subprocess.run(
        [lab.python, str(Path(__file__).resolve()), "_observe", mode, str(sock), str(seconds)],
        capture_output=True,
        text=True,
        env=lab.env | {"BENCH_TMUX": lab.tmux},
        timeout=seconds + 60,
        check=True,
    )
    wall = time.monotonic() - w0
    s1 = cpu_ticks(spid)[0]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["server_pct"] = 100.0 * (s1 - s0) / HZ / wall
    out["observer_pct"] = 100.0 * out["cpu_s"] / wall
    out["wall"] = wall
    return out


# python start-up (imports of fleet_tui.sources.tmux) is in the observer's CPU: measured
# separately and subtracted (the `none` row measures it: same process, no observing).


def cmd_cpu(args: argparse.Namespace) -> None:
    lab = TmuxLab("ctlcpu.")
    modes = args.modes
    table: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    try:
        for n in args.agents:
            for load in args.loads:
                sock = Path(lab.tmp) / f"f{n}{load}"
                make_fleet(lab, sock, n, load == "print")
                time.sleep(2.0)
                before = sizes(lab, sock)
                for rnd in range(args.rounds):
                    order = modes if rnd % 2 == 0 else list(reversed(modes))
                    for mode in order:
                        r = run_observer(lab, sock, mode, args.seconds)
                        table.setdefault((n, load, mode), []).append(r)
                        print(
                            f"n={n} {load:5} {mode:8} round {rnd}: server {r['server_pct']:.2f} % "
                            f"observer {r['observer_pct']:.2f} % lists {r['lists']} events {r['events']} "
                            f"pushes {r['pushes']} ({r['push_bytes']} B)  load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                after = sizes(lab, sock)
                changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
                changed.pop(f"{CTL}:0", None)
                print(f"n={n} {load}: window sizes changed by the observers: {changed or 'none'}")
                lab.run(sock, "kill-server", check=False)
                lab.sockets.discard(sock)
                time.sleep(1.0)
    finally:
        lab.cleanup()
    print()
    print(
        f"medians over {args.rounds} rounds of {args.seconds:g} s; % of one core; observer minus the `none` row"
    )
    print(
        f"{'agents':>6} {'load':5} {'mode':8} {'server %':>9} {'server+':>8} {'observer+':>9} {'total+':>7} "
        f"{'lists/min':>9} {'pushes/min':>10} {'KB/min':>7}"
    )
    summary = []
    for n in args.agents:
        for load in args.loads:
            base = table[(n, load, "none")]
            b_srv = statistics.median(r["server_pct"] for r in base)
            b_obs = statistics.median(r["observer_pct"] for r in base)
            for mode in modes:
                rs = table[(n, load, mode)]
                srv = statistics.median(r["server_pct"] for r in rs)
                obs = statistics.median(r["observer_pct"] for r in rs)
                per_min = 60.0 / args.seconds
                row = {
                    "agents": n,
                    "load": load,
                    "mode": mode,
                    "server_pct": round(srv, 3),
                    "server_extra_pct": round(srv - b_srv, 3),
                    "observer_extra_pct": round(obs - b_obs, 3),
                    "total_extra_pct": round(srv - b_srv + obs - b_obs, 3),
                    "lists_per_min": round(statistics.median(r["lists"] for r in rs) * per_min, 1),
                    "pushes_per_min": round(
                        statistics.median(r["pushes"] for r in rs) * per_min, 1
                    ),
                    "push_kb_per_min": round(
                        statistics.median(r["push_bytes"] for r in rs) * per_min / 1024, 1
                    ),
                }
                summary.append(row)
                print(
                    f"{n:>6} {load:5} {mode:8} {srv:9.2f} {srv - b_srv:+8.2f} {obs - b_obs:+9.2f} "
                    f"{srv - b_srv + obs - b_obs:+7.2f} {row['lists_per_min']:9.1f} "
                    f"{row['pushes_per_min']:10.1f} {row['push_kb_per_min']:7.1f}"
                )
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


# --------------------------------------------------------------------------- notifications


def cmd_notify(args: argparse.Namespace) -> None:
    """Which notifications a control client in its own hidden session gets for each change made
    to the OTHER sessions, and whether any agent window's size moves."""
    lab = TmuxLab("ctlnot.")
    sock = Path(lab.tmp) / "n"
    try:
        make_fleet(lab, sock, 4, printing=False)
        lab.run(sock, "new-session", "-d", "-s", "printer", "-x", "100", "-y", "30", PRINTER)
        lab.run(sock, "resize-window", "-t", "=agent0001:", "-x", "132", "-y", "40")
        before = sizes(lab, sock)
        cc = ControlClient(lab.tmux, sock, lab.env)
        cc.attached()
        cc.send(
            f"refresh-client -B 'fleet::{sub_format(('session_name', 'pane_id', 'pane_title', 'pane_dead', 'pane_current_command'))}'"
        )
        time.sleep(1.5)
        steps: list[tuple[str, list[str]]] = [
            ("new-session", ["new-session", "-d", "-s", "agentX", SLEEPER]),
            ("new-window", ["new-window", "-t", "=agentX:", SLEEPER]),
            ("kill-window", ["kill-window", "-t", "=agentX:1"]),
            ("split-window", ["split-window", "-t", "=agent0000:", SLEEPER]),
            ("kill-pane", ["kill-pane", "-t", "=agent0000:0.1"]),
            ("rename-session", ["rename-session", "-t", "=agentX", "agentY"]),
            ("rename-window", ["rename-window", "-t", "=agentY:0", "w"]),
            ("select-pane -T (title)", ["select-pane", "-t", "=agent0002:", "-T", "busy"]),
            (
                "set-option @mosaic_agent",
                ["set-option", "-p", "-t", "=agent0002:", "@mosaic_agent", "a2"],
            ),
            ("copy-mode", ["copy-mode", "-t", "=agent0002:"]),
            ("copy-mode -q", ["copy-mode", "-q", "-t", "=agent0002:"]),
            ("resize-window", ["resize-window", "-t", "=agent0003:", "-x", "90", "-y", "20"]),
            (
                "respawn-pane -k (command changes)",
                ["respawn-pane", "-k", "-t", "=agent0003:", "exec sleep 3601"],
            ),
            (
                "pane exits (remain-on-exit on)",
                [
                    "set-option",
                    "-w",
                    "-t",
                    "=agent0003:",
                    "remain-on-exit",
                    "on",
                    ";",
                    "respawn-pane",
                    "-k",
                    "-t",
                    "=agent0003:",
                    "exit 3",
                ],
            ),
            ("kill-session", ["kill-session", "-t", "=agentY"]),
        ]
        report: list[tuple[str, list[str]]] = []
        for label, argv in steps:
            t0 = time.monotonic()
            lab.run(sock, *argv)
            time.sleep(1.3)  # a subscription is checked once a second
            got = [
                ln[:110] for t, ln in cc.lines if t >= t0 and not ln.startswith(("%begin", "%end"))
            ]
            report.append((label, got))
        # another (normal-size) client attaching to an agent: what the control client sees
        t0 = time.monotonic()
        cc2 = ControlClient(lab.tmux, sock, lab.env)  # a second control client, also in __fleet_ctl
        time.sleep(0.5)
        cc2.close()
        time.sleep(0.5)
        report.append(
            (
                "another control client attaches/detaches",
                [
                    ln[:110]
                    for t, ln in cc.lines
                    if t >= t0 and not ln.startswith(("%begin", "%end"))
                ],
            )
        )
        # output of an agent's pane: is there any %output?
        outs = sum(1 for _t, ln in cc.lines if ln.startswith("%output"))
        clients = lab.run(
            sock, "list-clients", "-F", "#{session_name} #{client_flags}"
        ).stdout.strip()
        after = sizes(lab, sock)
        cc.close()
    finally:
        lab.cleanup()
    print(f"tmux {subprocess.run(['tmux', '-V'], capture_output=True, text=True).stdout.strip()}")
    for label, got in report:
        print(f"- {label}:")
        for ln in got or ["(nothing)"]:
            print(f"    {ln}")
    print(f"- %output lines while `printer` printed 10 lines/s the whole time: {outs}")
    print(f"- list-clients while attached: {clients}")
    moved = {
        k: (before[k], after.get(k))
        for k in before
        if k in after and before[k].split()[0] != after[k].split()[0]
    }
    moved = {k: v for k, v in moved.items() if not k.startswith(("agent0003", CTL))}
    print(
        f"- agent window sizes moved by the control client (agent0003 was resized on purpose): {moved or 'none'}"
    )
    print(f"- before: {before}")
    print(f"- after:  {after}")


# --------------------------------------------------------------------------- latency


def cmd_latency(args: argparse.Namespace) -> None:
    """new-session / kill-session -> the control client's %sessions-changed, the subscription's
    push, and the next 2 s poll that shows the change."""
    lab = TmuxLab("ctllat.")
    sock = Path(lab.tmp) / "l"
    res: dict[str, list[float]] = {}
    try:
        make_fleet(lab, sock, args.agents, printing=False)
        cc = ControlClient(lab.tmux, sock, lab.env)
        cc.attached()
        cc.send(f"refresh-client -B 'fleet::{sub_format(('session_name',))}'")
        polled: list[tuple[float, set[str]]] = []
        stop = threading.Event()

        def poller() -> None:
            nxt = time.monotonic()
            while not stop.is_set():
                out = lab.run(sock, "list-panes", "-a", "-F", PANE_FORMAT, check=False).stdout
                polled.append(
                    (time.monotonic(), {ln.split("\x1f", 1)[0] for ln in out.splitlines()})
                )
                nxt += POLL_S
                stop.wait(max(0.0, nxt - time.monotonic()))

        th = threading.Thread(target=poller, daemon=True)
        th.start()
        time.sleep(1.5)
        rng = random.Random(16)
        for i in range(args.trials):
            name = f"lat{i:03d}"
            for action in ("new", "kill"):
                time.sleep(rng.uniform(0.3, 2.3))
                t0 = time.monotonic()
                if action == "new":
                    lab.run(sock, "new-session", "-d", "-s", name, SLEEPER)
                else:
                    lab.run(sock, "kill-session", "-t", f"={name}")
                t_cmd = time.monotonic() - t0
                t_ev = cc.wait_for(lambda ln: ln.startswith("%sessions-changed"), t0, 5)
                want_in = action == "new"
                t_sub = cc.wait_for(
                    lambda ln, n=name, w=want_in: (
                        ln.startswith("%subscription-changed") and ((n + ";") in ln) == w
                    ),
                    t0,
                    5,
                )
                deadline = time.monotonic() + 5
                t_poll = None
                while t_poll is None and time.monotonic() < deadline:
                    for t, names in list(polled):
                        if t >= t0 and (name in names) == want_in:
                            t_poll = t
                            break
                    time.sleep(0.02)
                for key, t in (
                    ("cmd", t0 + t_cmd),
                    ("event", t_ev),
                    ("subscription", t_sub),
                    ("poll", t_poll),
                ):
                    if t is not None:
                        res.setdefault(f"{action}:{key}", []).append(1000 * (t - t0))
        stop.set()
        th.join()
        cc.close()
    finally:
        lab.cleanup()
    print(
        f"{args.agents} agents, {args.trials} trials each; ms from just before the tmux command is started"
    )
    print(f"{'':22} {'median':>8} {'p95':>8} {'max':>8} {'n':>3}")
    for k in sorted(res):
        v = sorted(res[k])
        p95 = v[min(len(v) - 1, round(0.95 * (len(v) - 1)))]
        print(f"{k:22} {statistics.median(v):8.1f} {p95:8.1f} {v[-1]:8.1f} {len(v):3d}")
    print(f"load average: {os.getloadavg()}")


# --------------------------------------------------------------------------- failures


def cmd_failures(args: argparse.Namespace) -> None:
    lab = TmuxLab("ctlfail.")
    out: list[str] = []

    def fresh(tag: str) -> tuple[Path, ControlClient]:
        sock = Path(lab.tmp) / tag
        make_fleet(lab, sock, 3, printing=False)
        cc = ControlClient(lab.tmux, sock, lab.env)
        time.sleep(0.3)
        return sock, cc

    def tail(cc: ControlClient, t0: float) -> str:
        got = [ln for t, ln in cc.lines if t >= t0 and not ln.startswith(("%begin", "%end"))]
        eof = f"EOF after {1000 * (cc.eof_at - t0):.0f} ms" if cc.eof_at else "no EOF"
        return f"{got[:4]} {eof}, client rc={cc.proc.poll()}"

    try:
        # 1. kill-server
        sock, cc = fresh("a")
        t0 = time.monotonic()
        lab.run(sock, "kill-server", check=False)
        time.sleep(1.0)
        out.append(f"kill-server: {tail(cc, t0)}")
        cc.close()
        # 2. SIGKILL of the server
        sock, cc = fresh("b")
        pid = server_pid(lab, sock)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        out.append(f"server SIGKILL: {tail(cc, t0)}")
        cc.close()
        # 3. someone kills the hidden session
        sock, cc = fresh("c")
        t0 = time.monotonic()
        lab.run(sock, "kill-session", "-t", f"={CTL}")
        time.sleep(1.0)
        out.append(f"kill-session -t ={CTL}: {tail(cc, t0)}")
        cc.close()
        # 4. the control client is killed
        make_ctl_session(lab, sock)
        cc = ControlClient(lab.tmux, sock, lab.env)
        time.sleep(0.3)
        cc.proc.kill()
        cc.proc.wait()
        time.sleep(0.3)
        cl = lab.run(sock, "list-clients", "-F", "#{client_name}").stdout.split()
        att = lab.run(
            sock, "display-message", "-p", "-t", f"={CTL}:", "#{session_attached}"
        ).stdout.strip()
        out.append(
            f"control client SIGKILL: server keeps {len(cl)} clients, {CTL} attached={att}, agents alive: "
            f"{len(lab.run(sock, 'list-sessions').stdout.splitlines()) - 1}"
        )
        # 5. the socket file is removed while the client is connected
        cc = ControlClient(lab.tmux, sock, lab.env)
        time.sleep(0.3)
        os.unlink(sock)
        t0 = time.monotonic()
        cc.send("list-sessions -F '#{session_name}'")
        time.sleep(0.5)
        rc = subprocess.run(
            [lab.tmux, "-S", str(sock), "list-sessions"],
            capture_output=True,
            text=True,
            env=lab.env,
        ).returncode
        out.append(
            f"socket file removed: control client still answers: "
            f"{[ln for t, ln in cc.lines if t >= t0][:5]}; a new `tmux -S` call rc={rc}"
        )
        cc.send("kill-server")
        time.sleep(0.5)
        cc.close()
        # 6. SIGSTOP of the server: silence looks like quiet
        sock, cc = fresh("d")
        pid = server_pid(lab, sock)
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        cc.send("display-message -p ping")
        got = cc.wait_for(lambda ln: ln == "ping", t0, 2.0)
        os.kill(pid, signal.SIGCONT)
        got2 = cc.wait_for(lambda ln: ln == "ping", t0, 2.0)
        out.append(
            f"server SIGSTOP: a ping over the client answered within 2 s: {got is not None}; "
            f"after SIGCONT: {got2 is not None} ({1000 * ((got2 or t0) - t0):.0f} ms)"
        )
        # 7. the last agent ends: does the hidden session keep the server alive?
        for i in range(3):
            lab.run(sock, "kill-session", "-t", f"=agent{i:04d}")
        time.sleep(0.5)
        names = lab.run(sock, "list-sessions", "-F", "#{session_name}", check=False).stdout.split()
        out.append(
            f"every agent session killed: server alive={connects(sock)}, sessions left={names}"
        )
        cc.close()
        lab.run(sock, "kill-server", check=False)
    finally:
        lab.cleanup()
    for ln in out:
        print(f"- {ln}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_observe":
        r = observe(sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]))
        print(json.dumps(r))
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("cpu")
    p.add_argument("--agents", type=int, nargs="+", default=[50, 300])
    p.add_argument("--loads", nargs="+", default=["idle", "print"], choices=["idle", "print"])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--modes",
        nargs="+",
        default=["none", "poll", "ctl", "sub", "sub-lite"],
        choices=["none", "poll", "ctl", "ctl-poll", "sub", "sub-lite", "sub-min"],
        help="observers (`none` first: the others are given relative to it)",
    )
    p.add_argument("--json")
    sub.add_parser("notify")
    p = sub.add_parser("latency")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--trials", type=int, default=12)
    sub.add_parser("failures")
    args = ap.parse_args()
    {"cpu": cmd_cpu, "notify": cmd_notify, "latency": cmd_latency, "failures": cmd_failures}[
        args.cmd
    ](args)


if __name__ == "__main__":
    main()
