"""Classroom load: N simulated browsers watch a running training through the page's own polling.

Starts the real app (``python app.py``) on a free port with its own saves/configs/exports, then trains the
embedded demo model several times -- launched with ``webui.runner.launch``, exactly what Start does -- and
alternates runs nobody watches with runs watched by N simulated browsers (unwatched, watched, unwatched,
watched, ...: the machine is shared and noisy, so the two kinds take turns). Each simulated browser behaves
like the page at the protocol level, as Gradio's JS client does: its own session hash, the heartbeat stream,
the page-load event (the app's re-attach ``demo.load``), then the train monitor's timer tick every second
while the server keeps that timer active, and the queue panel's tick every 2 s; a tick still pending when its
timer fires again is skipped (trigger_mode "once"). Every dependency (fn_index, trigger id, inputs, outputs,
timer interval, queued or not) is read from ``/config``: a queued one is a POST to ``/gradio_api/queue/join``
answered on the session's SSE stream ``/gradio_api/queue/data``, one with ``queue=False`` (the timers) a
POST to ``/gradio_api/run/<api_name>`` answered in its response -- the two ways the JS client calls.

    python bench/watchers.py                          # 30 browsers, U W U W, table + bench/results/watchers.json
    python bench/watchers.py --clients 30 --repeats 3 --samples 64 --out /tmp/w.json
    python bench/watchers.py --logins --out bench/results/watchers-logins.json   # 30 signed-in students

Speed is trained (non-padding) tokens/s in steady state: tokens_seen from the first logged step to the last,
over the elapsed time between them (so model loading and the first step are left out). "web CPU" is the app
process's CPU time over the run's wall time (100% = one core); "clients" is this script's own share (the
simulated browsers run on the same 2 cores, which real students' browsers would not); "others" is the
machine's busy share not used by the app, the training or this script -- high values mean a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import string
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402 - about a quarter of httpx's CPU per request: the browsers share the 2 cores
import orjson  # noqa: E402 - installed with gradio
import psutil  # noqa: E402

from bench.harness import (  # noqa: E402 - after ROOT is on sys.path (run as a script)
    AppProcess,
    free_port,
    machine_cpu_seconds,
    short_train_config,
    stop_runs,
    wait_http,
)

MODEL = "SmolLM2-135M-Instruct"
RESULTS = ROOT / "bench" / "results" / "watchers.json"
TICK_TIMEOUT_S = 60.0


# -- the page's protocol, read from /config ---------------------------------------------------------------
@dataclass(frozen=True)
class Dependency:
    """One event listener of the page: what the browser sends to trigger it and which components it updates."""

    fn_index: int
    trigger_id: int | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    queue: bool = True  # False: the page POSTs to /gradio_api/run/<api_name> and reads the answer directly
    api_name: str = "predict"
    trigger_mode: str = "once"  # while one is pending: once = drop, always_last = run once more after, multiple


@dataclass(frozen=True)
class PageSpec:
    components: dict  # id -> component config ({"type", "props", ...})
    load: Dependency  # demo.load(reattach): sets each monitor's run_path State and timer
    train_tick: Dependency  # the train monitor's gr.Timer tick
    queue_tick: Dependency  # the queue panel's gr.Timer tick
    train_timer: int
    queue_timer: int
    progress: int  # train-progress HTML
    status: int  # train-status Markdown
    plot: int  # train-loss-plot
    on_change: dict  # component id -> the dependencies its "change" triggers (fired by the page itself)

    def interval(self, timer_id: int) -> float:
        return float(self.components[timer_id]["props"]["value"])

    def is_state(self, cid: int) -> bool:
        return self.components[cid]["type"] == "state"


def _by_elem_id(components: dict, elem_id: str) -> int:
    found = [cid for cid, c in components.items() if c.get("props", {}).get("elem_id") == elem_id]
    if len(found) != 1:
        raise LookupError(f"/config: {len(found)} components with elem_id {elem_id!r}")
    return found[0]


def _dependency(config: dict, trigger: str, output_id: int) -> tuple[Dependency, int | None]:
    """The dependency triggered by ``trigger`` ("tick", "load") that updates component ``output_id``."""
    for i, dep in enumerate(config["dependencies"]):
        targets = [t for t in dep["targets"] if t[1] == trigger]
        if targets and output_id in dep["outputs"]:
            return _as_dependency(config, i, dep, targets[0][0]), targets[0][0]
    raise LookupError(f"/config: no {trigger!r} dependency updates component {output_id}")


def _as_dependency(config: dict, index: int, dep: dict, trigger_id: int | None) -> Dependency:
    # As the JS client decides: a dependency without its own "queue" flag follows enable_queue.
    queued = dep.get("queue") if dep.get("queue") is not None else config.get("enable_queue", True)
    return Dependency(dep.get("id", index), trigger_id, tuple(dep["inputs"]), tuple(dep["outputs"]), bool(queued),
                      dep.get("api_name") or "predict", dep.get("trigger_mode") or "once")


def _change_listeners(config: dict) -> dict[int, list[Dependency]]:
    found: dict[int, list[Dependency]] = {}
    for i, dep in enumerate(config["dependencies"]):
        for target_id, event in dep["targets"]:
            if event == "change" and not dep.get("js"):
                found.setdefault(target_id, []).append(_as_dependency(config, i, dep, target_id))
    return found


def page_spec(config: dict) -> PageSpec:
    components = {c["id"]: c for c in config["components"]}
    progress = _by_elem_id(components, "train-progress")
    train_tick, train_timer = _dependency(config, "tick", progress)
    queue_tick, queue_timer = _dependency(config, "tick", _by_elem_id(components, "queue-table"))
    load, _ = _dependency(config, "load", train_timer)
    return PageSpec(components, load, train_tick, queue_tick, train_timer, queue_timer, progress,
                    _by_elem_id(components, "train-status"), _by_elem_id(components, "train-loss-plot"),
                    _change_listeners(config))


def fetch_config(base_url: str, login: tuple[str, str] | None = None) -> dict:
    """The page's /config, signed in as ``login`` (user, password) where the app has logins."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    if login is not None:
        form = urllib.parse.urlencode({"username": login[0], "password": login[1]}).encode()
        opener.open(urllib.request.Request(base_url.rstrip("/") + "/login", data=form), timeout=30).read()
    with opener.open(base_url.rstrip("/") + "/config", timeout=30) as resp:
        return json.loads(resp.read())


# -- one simulated browser --------------------------------------------------------------------------------
class TickFailed(Exception):
    pass


def _session_hash() -> str:
    """Like the JS client's Math.random().toString(36).substring(2)."""
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=11))


@dataclass
class BrowserReport:
    session_hash: str
    attached: bool = False  # the page-load event turned the train timer on
    latencies: dict = field(default_factory=lambda: {"load": [], "train": [], "queue": [], "change": []})
    failures: list = field(default_factory=list)
    skipped: int = 0  # ticks the timer fired while the previous one was still pending (trigger_mode "once")
    steps_seen: list = field(default_factory=list)  # step shown by the progress bar, after each change
    steps_at: list = field(default_factory=list)  # (wall-clock time, step) of each of those changes
    plot_updates: int = 0
    final: dict = field(default_factory=dict)
    status_seen: list = field(default_factory=list)  # (wall-clock time, status line) at each change


class SimBrowser:
    """A page at the protocol level: the values of its components, as the JS client keeps them."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, spec: PageSpec,
                 login: tuple[str, str] | None = None):
        self.http, self.spec, self.login = http, spec, login
        self.base = base_url.rstrip("/")
        self.api = self.base + "/gradio_api"
        self.report = BrowserReport(_session_hash())
        self.values = {cid: (None if spec.is_state(cid) else c.get("props", {}).get("value"))
                       for cid, c in spec.components.items()}
        self.props = {cid: dict(c.get("props", {})) for cid, c in spec.components.items()}
        self._waiting: dict[str, asyncio.Future] = {}  # event_id -> its process_completed message
        self._arrived: dict[str, dict] = {}  # completions that came before the join answer was read
        self._stream: asyncio.Task | None = None
        self._busy: set[int] = set()
        self._again: set[int] = set()  # always_last dependencies to run once more when the pending one ends
        self._tasks: set[asyncio.Task] = set()

    # The session's SSE stream: opened when an event is pending, closed by the server when none is left.
    def _deliver(self, msg: dict) -> None:
        event_id = msg.get("event_id")
        fut = self._waiting.pop(event_id, None)
        if fut is None:
            self._arrived[event_id] = msg
        elif not fut.done():
            fut.set_result(msg)

    def _fail_all(self, why: str) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(TickFailed(why))
        self._waiting.clear()

    async def _read_stream(self) -> None:
        while self._waiting:
            try:
                async with self.http.get(f"{self.api}/queue/data", params={"session_hash": self.report.session_hash},
                                         timeout=aiohttp.ClientTimeout(total=None, sock_connect=30,
                                                                       sock_read=TICK_TIMEOUT_S)) as resp:
                    if resp.status != 200:
                        self._fail_all(f"queue/data HTTP {resp.status}")
                        return
                    async for raw in resp.content:
                        if not raw.startswith(b"data:"):
                            continue
                        msg = orjson.loads(raw[5:])
                        kind = msg.get("msg")
                        if kind == "process_completed":
                            self._deliver(msg)
                        elif kind == "unexpected_error":
                            self._fail_all(f"unexpected_error: {msg.get('message')}")
                        elif kind == "close_stream":
                            break
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                self._fail_all(f"queue/data: {type(exc).__name__} {exc}")
                return

    async def call(self, dep: Dependency) -> list:
        """Trigger ``dep`` as the page does; returns the output data (already applied to the page)."""
        data = [None if self.spec.is_state(cid) else self.values[cid] for cid in dep.inputs]
        body = {"data": data, "event_data": None, "fn_index": dep.fn_index, "trigger_id": dep.trigger_id,
                "session_hash": self.report.session_hash}
        if not dep.queue:  # one request, the answer in its response
            status, answer = await self._post(f"{self.api}/run/{dep.api_name.lstrip('/')}", body)
            if status != 200:
                raise TickFailed(f"run/{dep.api_name} HTTP {status}: {answer[:300]!r}")
            out = orjson.loads(answer)["data"]
            self._apply(dep, out)
            return out
        status, answer = await self._post(f"{self.api}/queue/join", body)
        if status != 200:
            raise TickFailed(f"queue/join HTTP {status}: {answer[:200]!r}")
        event_id = orjson.loads(answer)["event_id"]
        msg = self._arrived.pop(event_id, None)
        if msg is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiting[event_id] = fut
            if self._stream is None or self._stream.done():
                self._stream = asyncio.create_task(self._read_stream())
            try:
                msg = await asyncio.wait_for(fut, TICK_TIMEOUT_S)
            except asyncio.TimeoutError:
                self._waiting.pop(event_id, None)
                raise TickFailed(f"no answer in {TICK_TIMEOUT_S:.0f} s") from None
        if not msg.get("success"):
            raise TickFailed(f"error: {str(msg.get('output'))[:300]}")
        out = msg["output"]["data"]
        self._apply(dep, out)
        for state_id in msg["output"].get("changed_state_ids") or []:  # the server says which States changed
            self._changed(state_id)
        return out

    async def _post(self, url: str, body: dict) -> tuple[int, bytes]:
        async with self.http.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"},
                                  timeout=aiohttp.ClientTimeout(total=TICK_TIMEOUT_S)) as resp:
            return resp.status, await resp.read()

    def _apply(self, dep: Dependency, data: list) -> None:
        for cid, value in zip(dep.outputs, data):
            if self.spec.is_state(cid):
                continue  # held by the server; the client keeps null
            skipped = isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value
            before = self.values[cid]
            if isinstance(value, dict) and value.get("__type__") == "update":
                update = {k: v for k, v in value.items() if k != "__type__"}
                if "value" in update:
                    self.values[cid] = update.pop("value")
                self.props[cid].update(update)
            else:
                self.values[cid] = value
            if self.values[cid] != before:  # a component whose value changes fires its own "change"
                self._changed(cid)
            if cid == self.spec.status and self.values[cid] != before:
                self.report.status_seen.append((time.time(), self.values[cid]))
            if cid == self.spec.progress and not skipped:
                self.report.steps_seen.append(shown_step(self.values[cid] or ""))
                self.report.steps_at.append((time.time(), self.report.steps_seen[-1]))
            elif cid == self.spec.plot and not skipped:
                self.report.plot_updates += 1

    def timer_active(self, timer_id: int) -> bool:
        return bool(self.props[timer_id].get("active"))

    def _changed(self, cid: int) -> None:
        for dep in self.spec.on_change.get(cid, []):
            self._trigger("change", dep)

    def _trigger(self, name: str, dep: Dependency) -> bool:
        """Run ``dep`` as the page would now: not again while pending, unless its trigger_mode says so."""
        if dep.fn_index in self._busy:
            if dep.trigger_mode == "always_last":
                self._again.add(dep.fn_index)
            if dep.trigger_mode != "multiple":
                return False
        self._busy.add(dep.fn_index)
        task = asyncio.create_task(self._timed(name, dep))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _timed(self, name: str, dep: Dependency) -> None:
        t0 = time.perf_counter()
        try:
            await self.call(dep)
            self.report.latencies[name].append(time.perf_counter() - t0)
        except (asyncio.TimeoutError, TickFailed, aiohttp.ClientError) as exc:
            self.report.failures.append(f"{name}: {type(exc).__name__} {exc}")
        finally:
            self._busy.discard(dep.fn_index)
            if dep.fn_index in self._again:
                self._again.discard(dep.fn_index)
                self._trigger(name, dep)

    async def _timer(self, timer_id: int, name: str, dep: Dependency, until: asyncio.Event) -> None:
        """A gr.Timer in the page: fires every ``interval`` while active; a tick still pending is not repeated."""
        interval = self.spec.interval(timer_id)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, interval))  # pages are opened at different moments
        next_at = loop.time()
        while not until.is_set():
            next_at += interval
            try:
                await asyncio.wait_for(until.wait(), max(0.0, next_at - loop.time()))
                break
            except asyncio.TimeoutError:
                pass
            if not self.timer_active(timer_id):
                if name == "train":
                    break  # the run is over: this page's monitor stopped watching
                continue
            if not self._trigger(name, dep):
                self.report.skipped += 1

    async def _heartbeat(self) -> None:
        try:
            async with self.http.get(f"{self.api}/heartbeat/{self.report.session_hash}",
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as resp:
                async for _ in resp.content:
                    pass
        except (asyncio.TimeoutError, aiohttp.ClientError):
            pass

    async def watch(self, stop: asyncio.Event) -> BrowserReport:
        """Open the page, follow the train monitor until the server turns its timer off (the run ended)."""
        if self.login is not None:  # the login form's POST, as the page sends it; the session cookie follows
            async with self.http.post(f"{self.base}/login", data={"username": self.login[0],
                                                                  "password": self.login[1]}) as resp:
                if resp.status != 200:
                    self.report.failures.append(f"login: HTTP {resp.status}")
                    return self.report
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            t0 = time.perf_counter()
            try:
                await self.call(self.spec.load)
                self.report.latencies["load"].append(time.perf_counter() - t0)
            except (asyncio.TimeoutError, TickFailed, aiohttp.ClientError) as exc:
                self.report.failures.append(f"load: {type(exc).__name__} {exc}")
                return self.report
            self.report.attached = self.timer_active(self.spec.train_timer)
            train_done = asyncio.Event()
            queue = asyncio.create_task(self._timer(self.spec.queue_timer, "queue", self.spec.queue_tick,
                                                    _either(stop, train_done)))
            await self._timer(self.spec.train_timer, "train", self.spec.train_tick, stop)
            train_done.set()
            await queue
            while self._tasks:  # what the last ticks set off
                await asyncio.gather(*list(self._tasks))
            self.report.final = self.final_state()
            return self.report
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    def final_state(self) -> dict:
        return {"status": self.values[self.spec.status], "step": shown_step(self.values[self.spec.progress] or ""),
                "progress_pct": shown_pct(self.values[self.spec.progress] or ""),
                "loss_points": loss_points(self.values[self.spec.plot]),
                "timer_active": self.timer_active(self.spec.train_timer)}


class _either(asyncio.Event):  # noqa: N801 - an Event set when either of two is
    def __init__(self, a: asyncio.Event, b: asyncio.Event):
        super().__init__()
        self._parts = (a, b)

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._parts)

    async def wait(self) -> bool:
        waits = [asyncio.create_task(e.wait()) for e in self._parts]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return True


def shown_step(progress_html: str) -> int | None:
    found = re.search(r"(\d+)\s*/\s*(\d+|\?)", re.sub(r"<[^>]+>", " ", progress_html or ""))
    return int(found.group(1)) if found else None


def shown_pct(progress_html: str) -> int | None:
    found = re.search(r'aria-valuenow="(\d+)"', progress_html or "")
    return int(found.group(1)) if found else None


def loss_points(plot_value) -> int:
    """Points of the raw loss trace in a gr.Plot value as the page receives it."""
    if not isinstance(plot_value, dict) or not plot_value.get("plot"):
        return 0
    figure = json.loads(plot_value["plot"])
    traces = figure.get("data") or []
    return len(traces[0].get("x") or []) if traces else 0


async def watch_run(base_url: str, clients: int, stop: asyncio.Event | None = None,
                    spec: PageSpec | None = None, logins: list[tuple[str, str]] | None = None) -> list[BrowserReport]:
    """``clients`` simulated browsers open the page (one asyncio task each) and watch until the run ends; with
    ``logins``, browser i signs in as logins[i] first (a cookie jar each, as separate browsers have)."""
    spec = spec or page_spec(await asyncio.to_thread(fetch_config, base_url, logins[0] if logins else None))
    stop = stop or asyncio.Event()
    # Each page holds its heartbeat and event streams open, as a browser does; a plot line may be long.
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Accept-Encoding": "gzip, deflate, br"}  # as browsers ask: the app compresses its answers

    def session() -> aiohttp.ClientSession:  # unsafe: cookies for an IP address host (127.0.0.1) too
        return aiohttp.ClientSession(connector=connector, connector_owner=False, read_bufsize=2 ** 22,
                                     headers=headers, cookie_jar=aiohttp.CookieJar(unsafe=True))

    sessions = [session() for _ in range(clients if logins else 1)]
    try:
        browsers = [SimBrowser(sessions[i] if logins else sessions[0], base_url, spec,
                               logins[i] if logins else None) for i in range(clients)]

        async def opened(i: int, browser: SimBrowser) -> BrowserReport:
            await asyncio.sleep(i * 0.05)  # a class opening the page within a few seconds
            return await browser.watch(stop)

        return list(await asyncio.gather(*(opened(i, b) for i, b in enumerate(browsers))))
    finally:
        for http in sessions:
            await http.close()
        await connector.close()


def update_delays(reports: list[BrowserReport], step_times: dict[int, float]) -> list[float]:
    """For each page and each step the run wrote (``step_times``: when its status first said so), how long until
    the page's progress bar showed that step or a later one."""
    delays = []
    for r in reports:
        for step, written in step_times.items():
            shown = next((t for t, s in r.steps_at if s is not None and s >= step and t >= written - 1), None)
            if shown is not None:
                delays.append(max(0.0, shown - written))
    return sorted(delays)


def summarize_browsers(reports: list[BrowserReport], finished_at: float | None = None,
                       step_times: dict[int, float] | None = None) -> dict:
    """Requests the pages made and how fast the pages followed the run. A tick may wait on the server for what
    its page shows to change (a long poll), so its time is not a request latency: ``update_*`` is how long after
    the run wrote a step the pages showed it, ``end_seen_*`` how long after the run ended they showed that
    (``finished_at``: the run's status), ``tick_*``/``train_answer_*`` the time each tick was open."""
    ticks = sorted(x for r in reports for x in r.latencies["queue"])
    train = sorted(x for r in reports for x in r.latencies["train"])
    delays = update_delays(reports, step_times or {})
    finals = [json.dumps(r.final, sort_keys=True) for r in reports]
    lags = sorted(t - finished_at for r in reports for t, text in r.status_seen[-1:]
                  if finished_at and text == r.final.get("status"))
    return {
        "clients": len(reports),
        "attached": sum(r.attached for r in reports),
        "ticks": len(ticks) + len(train),
        "train_ticks": len(train),
        "requests": sum(len(v) for r in reports for v in r.latencies.values()) + sum(len(r.failures) for r in reports),
        "failed_ticks": sum(len(r.failures) for r in reports),
        "skipped_ticks": sum(r.skipped for r in reports),
        "change_events": sum(len(r.latencies["change"]) for r in reports),
        "tick_p50_ms": round(1000 * _pct(ticks, 50), 1) if ticks else None,
        "tick_p95_ms": round(1000 * _pct(ticks, 95), 1) if ticks else None,
        "train_answer_p50_ms": round(1000 * _pct(train, 50), 1) if train else None,
        "train_answer_p95_ms": round(1000 * _pct(train, 95), 1) if train else None,
        "update_p50_s": round(_pct(delays, 50), 2) if delays else None,
        "update_p95_s": round(_pct(delays, 95), 2) if delays else None,
        "end_seen_p50_s": round(_pct(lags, 50), 2) if lags else None,
        "end_seen_max_s": round(lags[-1], 2) if lags else None,
        "load_p50_ms": round(1000 * statistics.median(x for r in reports for x in r.latencies["load"]), 1)
        if any(r.latencies["load"] for r in reports) else None,
        "distinct_final_states": len(set(finals)),
        "final_state": reports[0].final if reports else {},
        "failures_sample": [f for r in reports for f in r.failures][:5],
    }


def _pct(sorted_values: list[float], p: float) -> float:
    k = (len(sorted_values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# -- the app, the runs, the measurements --------------------------------------------------------------------
def launch_run(name: str, cfg, user: str | None = None):
    """Start the run as the Start button does (the device queue, a detached engine process), in ``user``'s
    workspace where given."""
    from engine.core.workspace import Workspace
    from webui import runner

    return runner.launch(runner.run_dir_for(MODEL, "lora", name, Workspace(user).saves), cfg)


def run_speed(run) -> dict:
    """Steady-state trained tokens/s from events.jsonl: from the first logged step to the last."""
    events = [e for e in run.read_events() if "loss" in e and e.get("tokens_seen")]
    if len(events) < 2:
        return {"tokens_per_s": None, "steps": len(events)}
    first, last = events[0], events[-1]
    span = last["elapsed_s"] - first["elapsed_s"]
    return {"tokens_per_s": round((last["tokens_seen"] - first["tokens_seen"]) / span, 1) if span > 0 else None,
            "steps": last["step"], "loss_points": len(events), "train_s": round(last["elapsed_s"], 1),
            "steady_s": round(span, 1), "tokens": last["tokens_seen"]}


def _cpu_s(proc: psutil.Process | None) -> float:
    """The process's own CPU time: not its reaped children's (the app reaps the training runs it started)."""
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except (psutil.Error, AttributeError):
        return 0.0


class CpuMeter:
    """CPU time of the app, the training process and this script, and the rest of the machine, over a run."""

    def __init__(self, web_pid: int):
        self.web, self.me = psutil.Process(web_pid), psutil.Process()
        self.train: psutil.Process | None = None
        self.train_s = 0.0

    def start(self) -> None:
        self.t0, self.web0, self.me0, self.machine0 = time.monotonic(), _cpu_s(self.web), _cpu_s(self.me), \
            machine_cpu_seconds()

    def sample(self, run) -> None:
        """Follow the training process (its CPU time is read while it lives)."""
        pid = run.read_status().get("pid")
        if pid and (self.train is None or self.train.pid != pid):
            try:
                self.train = psutil.Process(int(pid))
            except psutil.Error:
                return
        if self.train is not None:
            self.train_s = max(self.train_s, _cpu_s(self.train) + sum(_cpu_s(c) for c in _children(self.train)))

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        web, me = _cpu_s(self.web) - self.web0, _cpu_s(self.me) - self.me0
        busy1, total1 = machine_cpu_seconds()
        busy, total = busy1 - self.machine0[0], total1 - self.machine0[1]
        others = max(0.0, busy - web - me - self.train_s)
        return {"wall_s": round(wall, 1), "web_cpu_pct": round(100 * web / wall, 1),
                "clients_cpu_pct": round(100 * me / wall, 1), "train_cpu_pct": round(100 * self.train_s / wall, 1),
                "others_pct_of_machine": round(100 * others / total, 1) if total else None}


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


async def trial(app, kind: str, index: int, clients: int, cfg, spec: PageSpec,
                logins: list[tuple[str, str]] | None = None) -> tuple[dict, list[BrowserReport]]:
    """One run, watched by ``clients`` simulated browsers or by none; waits until it ends. ``app`` needs ``.url``
    and ``.proc`` (its process). Returns the measurements and each browser's report.

    With ``logins`` (the classroom), the run is the first login's; when watched, every other login has pressed
    Start too, its job waiting in the queue behind it, and each page watches its own login's run. Those jobs are
    cancelled once the measured run ends."""
    from engine.core.rundir import DONE_STATES
    from webui import runner

    meter = CpuMeter(app.proc.pid)
    meter.start()
    stamp = int(time.time())
    run = launch_run(f"{kind}-{index}-{stamp}", cfg, logins[0][0] if logins else None)
    waiting = [launch_run(f"{kind}-{index}-{stamp}", cfg, user) for user, _ in (logins or [])[1:clients]] \
        if clients else []
    stop = asyncio.Event()

    step_times: dict[int, float] = {}

    async def follow() -> str:
        """Notes when the run's status first shows each step (every 50 ms: a small read)."""
        last_sample = 0.0
        while True:
            status = run.read_status()
            step_times.setdefault(int(status.get("step") or 0), time.time())
            if time.monotonic() - last_sample >= 0.5:
                last_sample = time.monotonic()
                meter.sample(run)
                status = run.live_status()
            if status.get("state") in DONE_STATES:
                for other in waiting:  # the classroom's other jobs leave the queue (their pages see that)
                    runner.stop(other)
                return status["state"]
            await asyncio.sleep(0.05)

    watchers = asyncio.create_task(watch_run(app.url, clients, stop, spec, logins)) if clients else None
    state = await follow()
    reports: list[BrowserReport] = []
    if watchers:
        try:  # the pages see the end on their next tick, then turn their timers off
            reports = await asyncio.wait_for(asyncio.shield(watchers), 60)
        except asyncio.TimeoutError:
            stop.set()
            reports = await watchers
    cpu = meter.stop()
    result = {"kind": kind, "index": index, "run": str(run.path), "state": state, **run_speed(run), **cpu}
    if reports:
        step_times.pop(0, None)
        result["browsers"] = summarize_browsers(reports, run.read_status().get("finished_at"), step_times)
        requests = result["browsers"]["requests"]
        result["requests_per_s"] = round(requests / cpu["wall_s"], 1)
        result["web_ms_per_request"] = round(10 * cpu["web_cpu_pct"] * cpu["wall_s"] / requests, 2) \
            if requests else None
    return result, reports


def summary(trials: list[dict]) -> dict:
    def median_of(kind: str, key: str, source: str | None = None):
        values = [(t[source] if source else t).get(key) for t in trials if t["kind"] == kind and (t if not source
                                                                                                  else t.get(source))]
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    unwatched, watched = median_of("unwatched", "tokens_per_s"), median_of("watched", "tokens_per_s")
    browsers = [t["browsers"] for t in trials if "browsers" in t]
    return {
        "unwatched_tokens_per_s": unwatched, "watched_tokens_per_s": watched,
        "ratio": round(watched / unwatched, 3) if unwatched and watched else None,
        "unwatched_each": [t["tokens_per_s"] for t in trials if t["kind"] == "unwatched"],
        "watched_each": [t["tokens_per_s"] for t in trials if t["kind"] == "watched"],
        "update_p50_s": median_of("watched", "update_p50_s", "browsers"),
        "update_p95_s": max((b["update_p95_s"] or 0) for b in browsers) if browsers else None,
        "tick_p50_ms": median_of("watched", "tick_p50_ms", "browsers"),
        "tick_p95_ms": max((b["tick_p95_ms"] or 0) for b in browsers) if browsers else None,
        "train_answer_p50_ms": median_of("watched", "train_answer_p50_ms", "browsers"),
        "train_answer_p95_ms": max((b["train_answer_p95_ms"] or 0) for b in browsers) if browsers else None,
        "load_p50_ms": median_of("watched", "load_p50_ms", "browsers"),
        "end_seen_max_s": max((b["end_seen_max_s"] or 0) for b in browsers) if browsers else None,
        "failed_ticks": sum(b["failed_ticks"] for b in browsers),
        "requests_per_s": median_of("watched", "requests_per_s"),
        "web_cpu_pct_watched": median_of("watched", "web_cpu_pct"),
        "web_ms_per_request": median_of("watched", "web_ms_per_request"),
        "web_cpu_pct_unwatched": median_of("unwatched", "web_cpu_pct"),
        "clients_cpu_pct_watched": median_of("watched", "clients_cpu_pct"),
        "others_pct_max": max((t["others_pct_of_machine"] or 0) for t in trials) if trials else None,
    }


def print_table(trials: list[dict], total: dict) -> None:
    head = (f"{'run':<13}{'tokens/s':>9}{'steps':>6}{'web CPU':>9}{'clients':>8}{'train':>7}{'others':>8}"
            f"{'req/s':>7}{'failed':>7}{'update p50':>11}{'p95':>7}{'end seen':>9}")
    print(head)
    print("-" * len(head))
    for t in trials:
        b = t.get("browsers", {})
        end = f"{b['end_seen_max_s']:.1f} s" if b.get("end_seen_max_s") is not None else ""
        p50 = f"{b['update_p50_s']:.2f} s" if b.get("update_p50_s") is not None else ""
        p95 = f"{b['update_p95_s']:.2f} s" if b.get("update_p95_s") is not None else ""
        print(f"{t['kind'] + '-' + str(t['index']):<13}{t['tokens_per_s'] or 0:>9.1f}{t.get('steps', 0):>6}"
              f"{t['web_cpu_pct']:>8.1f}%{t['clients_cpu_pct']:>7.1f}%{t['train_cpu_pct']:>6.0f}%"
              f"{t['others_pct_of_machine'] or 0:>7.1f}%{t.get('requests_per_s', ''):>7}"
              f"{b.get('failed_ticks', ''):>7}{p50:>11}{p95:>7}{end:>9}")
    print(f"\nmedian tokens/s: unwatched {total['unwatched_tokens_per_s']}, watched {total['watched_tokens_per_s']}"
          f"  -> ratio {total['ratio']}  (goal >= 0.85)")
    print(f"pages showed each new step {total['update_p50_s']} s (p50) / {total['update_p95_s']} s (p95) after the "
          f"run wrote it, the end within {total['end_seen_max_s']} s; ticks open p50 train "
          f"{total['train_answer_p50_ms']} ms, queue {total['tick_p50_ms']} ms (they wait for a change); page load "
          f"{total['load_p50_ms']} ms; failed {total['failed_ticks']}")
    print(f"web CPU while watched {total['web_cpu_pct_watched']}% of a core (unwatched "
          f"{total['web_cpu_pct_unwatched']}%), {total['requests_per_s']} requests/s, "
          f"{total['web_ms_per_request']} ms CPU per request; simulated browsers {total['clients_cpu_pct_watched']}%; "
          f"others at most {total['others_pct_max']}% of the machine")


def workdir_env(base: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name in ("saves", "configs", "exports", "workspaces"):
        (base / name).mkdir(parents=True, exist_ok=True)
        env[f"TUNEBOARD_{name.upper()}"] = os.environ[f"TUNEBOARD_{name.upper()}"] = str(base / name)
    return env


async def main_async(args) -> dict:
    from engine.core.demo_model import ensure_demo_model

    ensure_demo_model()
    base = Path(tempfile.mkdtemp(prefix="tb-watchers-"))
    env = workdir_env(base)
    logins, app_args = None, []
    if args.logins:  # the classroom: a login per page, each its own workspace (python app.py --auth-file ...)
        logins = [(f"student{i:02d}", f"pass-{i:02d}-{random.randrange(10 ** 6)}") for i in range(1, args.clients + 1)]
        (base / "logins.txt").write_text("".join(f"{u}:{p}\n" for u, p in logins), encoding="utf-8")
        app_args = ["--auth-file", str(base / "logins.txt"), "--max-queued", "1"]
    app = AppProcess(free_port(), env, args=app_args, log=base / "app.log")
    trials: list[dict] = []
    try:
        await asyncio.to_thread(wait_http, app.url, 180, app.proc)
        spec = page_spec(await asyncio.to_thread(fetch_config, app.url, logins[0] if logins else None))
        cfg = short_train_config(args.samples, args.epochs)
        order = ["unwatched", "watched"] * args.repeats
        for i, kind in enumerate(order):
            result, _ = await trial(app, kind, i // 2 + 1, args.clients if kind == "watched" else 0, cfg, spec,
                                    logins)
            trials.append(result)
            b = result.get("browsers", {})
            print(f"  {kind}-{i // 2 + 1}: {result['tokens_per_s']} tokens/s, web CPU {result['web_cpu_pct']}%"
                  + (f", {result['requests_per_s']} requests/s (failed {b['failed_ticks']})" if b else ""),
                  flush=True)
            if app.proc.poll() is not None:
                raise RuntimeError(f"the app exited ({app.proc.returncode}) during {kind}-{i // 2 + 1}")
    finally:
        app.stop()
        for saves in [base / "saves", *(base / "workspaces").glob("*/saves")]:
            stop_runs(saves)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    total = summary(trials)
    return {"settings": {"clients": args.clients, "logins": bool(args.logins), "repeats": args.repeats,
                         "samples": args.samples,
                         "epochs": args.epochs, "cpus": os.cpu_count(),
                         "tick_route": "queue/join + queue/data" if spec.train_tick.queue else "run (queue=False)",
                         "when": time.strftime("%Y-%m-%d %H:%M:%S")},
            "summary": total, "trials": trials}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=30, help="simulated browsers per watched run (default 30)")
    parser.add_argument("--repeats", type=int, default=2, help="pairs of (unwatched, watched) runs (default 2)")
    parser.add_argument("--samples", type=int, default=64, help="identity samples per run (default 64, 16 steps)")
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs per run (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary saves/ and app.log")
    parser.add_argument("--logins", action="store_true",
                        help="the classroom: a login per page (--auth-file), each watching its own run; the first "
                             "login's run trains while the others' wait in the queue")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print()
    print_table(result["trials"], result["summary"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
