"""``taskmill top``: a live terminal view of one database, read through its own connection.

It reads only what the database holds (counts, running and recent tasks), so it works from any process
on the host with read access, whether or not the daemon's HTTP endpoints are enabled.
"""

from __future__ import annotations

import contextlib
import json
import select
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .cli_views import ago, console, history_table, supervisor_pid
from .client import Client


class TopState:
    """What the previous frame saw, for rates."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.finished: int | None = None


def live_running(http: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """The daemon's /snapshot (running tasks with their last progress report), if an address is known."""
    if not http:
        return None
    try:
        with urllib.request.urlopen(http.rstrip("/") + "/snapshot", timeout=1.0) as resp:
            snap = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return list(snap.get("running", [])), snap


def bar(fraction: float | None, width: int = 20) -> str:
    if fraction is None:
        return "-"
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction * 100:3.0f}%"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def progress_cell(r: dict[str, Any]) -> str:
    """The executor's own figure; else an estimate from past runs (marked ~); bytes, rate and ETA if reported."""
    reported, estimated = r.get("progress"), r.get("estimated")
    shown = bar(reported) if reported is not None else ("~" + bar(estimated) if estimated is not None else "-")
    done, total, bps, eta = r.get("bytes_completed"), r.get("bytes_total"), r.get("throughput_bps"), r.get("eta")
    if done is not None:
        shown += f"  {human_bytes(done)}" + (f"/{human_bytes(total)}" if total else "")
        if bps:
            shown += f" {human_bytes(bps)}/s"
        if eta is not None:
            shown += f" eta {eta:.0f}s"
    msg = r.get("message")
    return shown + (f"  {msg}" if msg else "")


def pressure_table(policy: dict[str, Any]) -> Table | None:
    """Pressure and its sources, machine IO rates, gate denials, fair shares and rate-limit tokens (from the
    daemon's /snapshot); None when no policy is configured."""
    sources = policy.get("pressure_breakdown") or []
    res = policy.get("resources")
    denials = policy.get("gate_denials") or {}
    shares = policy.get("group_allocations") or []
    limits = policy.get("rate_limits") or []
    if not (sources or res or denials or shares or limits):
        return None
    t = Table(title=f"pressure {policy.get('pressure', 0.0):.2f}", title_justify="left")
    t.add_column("what")
    t.add_column("value", justify="left")
    for name, value in sources:
        t.add_row(f"source {name}", bar(value, 10))
    if res:
        t.add_row("disk read / write", f"{human_bytes(res['io_read_bytes_per_sec'])}/s / "
                                       f"{human_bytes(res['io_write_bytes_per_sec'])}/s")  # fmt: skip
        t.add_row("net rx / tx", f"{human_bytes(res['net_rx_bytes_per_sec'])}/s / "
                                 f"{human_bytes(res['net_tx_bytes_per_sec'])}/s")  # fmt: skip
        t.add_row("cpu", bar(res["cpu_usage"], 10))
    for share in shares:
        what = f"weight {share['weight']}  slots {share['allocated_slots']}  running {share['running']}"
        t.add_row(f"group {share['group'] or '(ungrouped)'}", what)
    for lim in limits:
        t.add_row(f"rate {lim['scope']}", f"{lim['available_tokens']:.1f}/{lim['burst']} tokens")
    if denials:
        t.add_row("held back", ", ".join(f"{k} {v}" for k, v in sorted(denials.items())))
    return t


def frame(client: Client, db_path: str, state: TopState, *, rows: int = 15, live: bool = True,
          http: str | None = None) -> RenderableType:  # fmt: skip
    now = time.time()
    store = client._store()
    counts = store.status_counts()
    history = store.history_status_counts()
    finished = sum(history.values())
    rate = ""
    if state.at is not None and state.finished is not None and now > state.at:
        rate = f"{max(finished - state.finished, 0) / (now - state.at):.1f} finished/s"
    state.at, state.finished = now, finished
    pid = supervisor_pid(db_path)
    who = f"supervisor pid {pid}" if pid else "no supervisor running"
    title = Text.assemble(("taskmill top", "bold"), f"  {db_path}  {who}  {time.strftime('%H:%M:%S')}  {rate}")

    summary = Table(title="queue", title_justify="left")
    summary.add_column("status")
    summary.add_column("count", justify="right")
    for name, n in counts.items():
        summary.add_row(name, str(n))
    for name, n in sorted(history.items()):
        summary.add_row(f"{name} (history)", str(n))

    running = client.running_tasks(limit=rows)
    by_domain: Counter[str] = Counter()
    for task_type, n in store.pending_by_type().items():
        by_domain[task_type.partition("::")[0]] += n
    domains = Table(title="pending by domain", title_justify="left")
    domains.add_column("domain")
    domains.add_column("pending", justify="right")
    domains.add_column("running", justify="right")
    run_by_domain = Counter(r.domain for r in client.running_tasks(limit=10_000))
    for name in sorted(set(by_domain) | set(run_by_domain)):
        domains.add_row(name, str(by_domain.get(name, 0)), str(run_by_domain.get(name, 0)))

    depth = Table(title="pending by priority", title_justify="left")
    for col in ("domain", "priority", "pending"):
        depth.add_column(col, justify="left" if col == "domain" else "right")
    for name, prio, n in store.pending_by_domain_priority()[:rows]:
        depth.add_row(name, str(prio), str(n))

    snap = live_running(http)
    progress = {r["id"]: r for r in snap[0]} if snap else {}
    active = Table(title=f"running (first {rows})", title_justify="left")
    for col in ("id", "type", "prio", "attempt", "running for", "progress"):
        active.add_column(col, justify="left" if col in ("type", "progress") else "right")
    for r in running:
        active.add_row(str(r.id), r.task_type, str(r.priority), str(r.attempt), ago(r.started_at, now),
                       progress_cell(progress.get(r.id, {})))  # fmt: skip
    pressure = pressure_table(snap[1].get("policy") or {}) if snap else None
    if snap:
        workers = snap[1].get("workers", [])
        busy = sum(1 for w in workers if w.get("running"))
        title.append(f"  workers busy {busy}/{len(workers)}")
    elif http:
        title.append("  (daemon HTTP not reachable: no progress)")
    recent = history_table(client.history(limit=10), title="recent history")
    parts: list[RenderableType] = [title, summary, domains, depth, active, recent]
    if pressure is not None:
        parts.insert(4, pressure)
    if live:
        parts.append(Text("q or Ctrl-C quits", style="dim"))
    return Group(*parts)


@contextlib.contextmanager
def _keyboard() -> Iterator[bool]:
    """cbreak mode on a terminal, so a single ``q`` is read without Enter; restored on exit."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_key(interactive: bool, timeout: float) -> str:
    if not interactive:
        time.sleep(timeout)
        return ""
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return sys.stdin.read(1) if ready else ""


def run(client: Client, db_path: str, *, interval: float, once: bool, http: str | None = None) -> None:
    state = TopState()
    out = console()
    if once:
        out.print(frame(client, db_path, state, live=False, http=http))
        return
    from rich.live import Live

    try:
        with _keyboard() as interactive, Live(frame(client, db_path, state, http=http), console=out,
                                              auto_refresh=False, screen=out.is_terminal) as live:  # fmt: skip
            while _wait_key(interactive, interval).lower() != "q":
                live.update(frame(client, db_path, state, http=http), refresh=True)
    except KeyboardInterrupt:
        pass
