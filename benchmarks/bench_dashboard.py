"""Dashboard figures: a control-room store, first render, server CPU per browser, replay slow-down.

0. control room (``--phase room``; ``--alerts`` 100,000 alerts and ``--lumis`` 200
   lumisections in the store, ``tests.support.control_room``): in real Chromium at 1280x720
   and 1920x1080, the cold first load right after the server starts and the median of 3
   warm loads: navigation -> status and plots drawn (target < 2 s) and -> alert table rows
   (target < 3 s), with the HTML's first byte and the scripts loaded beside them; click
   on an alert row -> its explanation in the "why" card (median of 8 clicks, timed by the
   browser from the click event to the first frame naming the alert; target < 0.5 s; the
   driver's view printed beside it); server CPU per connected browser at 1 Hz updates
   while alerts keep arriving (server-thread CPU with 1 page minus 0 pages, target < 10 %
   of a core);

Serves the dashboard in-process (``pn.serve(threaded=True)``) over a fresh SQLite store,
replays a cached NanoAOD-like run (single-lepton-stream-like content, 20,000 events per
lumisection; ``--events``, default 500,000) through the embedded pipeline in the server's
background thread, and drives real headless Chromium pages (Playwright, /usr/bin/chromium):

1. first render: page load -> all ``N_CANVAS`` Bokeh canvases drawn and the status light shown
   (best and median of 3 fresh pages; target < 3 s);
2. server CPU per connected browser at 1 Hz updates while a paced replay (``--rate``,
   default 50 kHz) runs: CPU of this process (server + replay thread) with 1 page minus
   with 0 pages (target < 10 % of a core);
3. replay throughput at full speed with 0 and with ``--sessions`` (default 10) pages
   connected (target: slow-down < 10 %). Chromium runs on the same machine and its own
   CPU is printed too: on a 2-core machine shared with others it competes with the replay.

The naive baseline for (2) and (3) is the same replay with no browser connected.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import RESULTS, header, save

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
N_CANVAS = 14  #: strip, 3 rate plots, histogram + ratio, timeline, alert map, 2 why bars,
#: event display (2), DQM maps (2)
N_FIRST = 4  #: the first stage: the strip and the three rate plots


def run_folder(n: int) -> Path:
    """Cached archive with run 4242 of ``n`` events."""
    import awkward as ak

    from benchmarks.bench_replay import single_lepton_stream
    from hotline.stream.archive_writer import relabel, write_run

    folder = RESULTS / f"dashboard_input_{n}"
    if (folder / "run_004242").exists():
        return folder
    parts = [single_lepton_stream(min(200_000, n - s), seed=s + 7) for s in range(0, n, 200_000)]
    arrays = relabel(ak.concatenate(parts), 4242, events_per_lumi=20_000)
    write_run(folder, 4242, arrays, events_per_file=250_000, card={"description": "bench"})
    return folder


SERVER_TID: int | None = None  #: native id of the Tornado thread serving the dashboard


def _thread_cpu(tid: int | None) -> float:
    for t in psutil.Process().threads():
        if t.id == tid:
            return t.user_time + t.system_time
    return 0.0


def _chromium_times() -> dict[int, float]:
    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name():
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


#: a session nobody is connected to is dropped after this long: longer than a page takes
#: from its HTTP request (which builds the session) to its websocket (which uses it), else
#: the server builds the page twice; closed pages are gone ``EXPIRE_S`` after closing
SESSION_LIFETIME_MS = 8000
EXPIRE_S = SESSION_LIFETIME_MS / 1000 + 1.5

PIN = False  #: --pin: this process (server, and the replay child) on CPU 0, chromium on CPU 1


def renice_chromium() -> None:
    """Keep the browsers off the server's CPU: lowest priority and, with ``PIN``, the other
    cores. In production the browsers run on the shift crew's machines; on this 2-core
    machine they would otherwise take the CPU the server and the replay need."""
    ncpu = os.cpu_count() or 1
    for pid in _chromium_times():
        try:
            p = psutil.Process(pid)
            p.nice(19)
            if PIN and ncpu > 1:
                p.cpu_affinity(list(range(1, ncpu)))
        except psutil.Error:
            pass


class CpuMeter:
    """CPU (fraction of a core) over a window: this process, its server thread, chromium."""

    @staticmethod
    def _own() -> float:
        """CPU of this process plus its finished children (the replay process)."""
        t = psutil.Process().cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> CpuMeter:
        renice_chromium()
        self.t0, self.c0 = time.perf_counter(), self._own()
        self.s0, self.b0 = _thread_cpu(SERVER_TID), _chromium_times()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.process = (self._own() - self.c0) / self.wall
        self.server = (_thread_cpu(SERVER_TID) - self.s0) / self.wall
        b1 = _chromium_times()
        self.browser = sum(v - self.b0.get(k, 0.0) for k, v in b1.items()) / self.wall


def wipe(store: Any) -> None:
    with store.transaction() as cur:
        cur.execute("DELETE FROM alerts")
        cur.execute("DELETE FROM lumi_summaries")
        cur.execute("DELETE FROM lumi_summary_parts")  # else a replay counts as already seen


def replay(hub: Any, folder: Path, rate: float | None) -> dict:
    from hotline.stream.archive import find_run

    wipe(hub.store)
    run = find_run(folder, 4242)
    with CpuMeter() as m:
        hub.replay.start(run.files, 4242, rate=rate)
        hub.replay.wait()
    assert not hub.replay.error, hub.replay.error
    ev = hub.replay.events_read
    # the pipeline's own time (run_embedded in the replay process), not the process start-up
    secs = hub.replay.report.seconds if hub.replay.report else m.wall
    return {"events": ev, "seconds": secs, "rate": ev / secs, "process_cpu": m.process,
            "server_cpu": m.server, "browser_cpu": m.browser}


class InProcessSessions:
    """``n`` dashboard sessions built in this process (own Bokeh Document each) and ticked
    at 1 Hz from one thread: the server-side work of n sessions without browsers."""

    def __init__(self, hub: Any, n: int) -> None:
        import threading

        from bokeh.document import Document

        from hotline.dashboard.app import create_page

        self.pages = []
        for _ in range(n):
            page = create_page(hub, user="guest")
            doc = Document()
            doc.add_root(page.get_root(doc))
            self.pages.append(page)
        self._stop = threading.Event()
        self.ticks = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for page in self.pages:
                page.hotline_state.update()
                self.ticks += 1

    def __enter__(self) -> InProcessSessions:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def best_replay(hub: Any, folder: Path, repeat: int) -> dict:
    """The fastest of ``repeat`` full-speed replays (the machine is shared: take the best)."""
    return max((replay(hub, folder, None) for _ in range(repeat)), key=lambda r: r["rate"])


def open_pages(browser: Any, url: str, n: int) -> list[Any]:
    pages = []
    for _ in range(n):
        p = browser.new_page(viewport={"width": 1600, "height": 1300})
        p.goto(url)
        p.wait_for_selector("canvas", timeout=30_000)
        pages.append(p)
    return pages


def _drawn_page(browser: Any, url: str, timeout: float = 60.0) -> Any:
    """A page whose every view is drawn (the status, the alert table and the rest,
    ``MARKS_JS``)."""
    page = browser.new_page(viewport={"width": 1600, "height": 1300})
    page.add_init_script(MARKS_JS)
    page.goto(url)
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if len(page.evaluate("() => window.__hotline_marks || {}")) >= 3:
            return page
        time.sleep(0.2)
    raise RuntimeError(f"{url}: the page's views were not all drawn within {timeout:.0f} s")


def first_render(browser: Any, url: str) -> tuple[float, float]:
    """(status light + the strip and the three rate plots drawn, all ``N_CANVAS`` canvases
    drawn), seconds."""
    page = browser.new_page(viewport={"width": 1600, "height": 1300})
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#hotline-status", timeout=30_000)
    deadline = time.perf_counter() + 30
    first = None
    while time.perf_counter() < deadline:
        n = page.locator("canvas").count()
        if first is None and n >= N_FIRST:
            first = time.perf_counter() - t0
        if n >= N_CANVAS:
            break
        time.sleep(0.02)
    full = time.perf_counter() - t0
    page.close()
    return first or full, full


ROOM_SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1080)}


#: recorded in the page itself (every 25 ms, across Panel's shadow roots), so the times are
#: the browser's own and not those of a busy machine answering Playwright's queries:
#: milliseconds from navigation to the status light with the first-stage plots, to the
#: first alert-table row, and to the last stage's card (every view on the page)
MARKS_JS = """
(() => {
  window.__hotline_marks = {};
  const deep = (root, sel, out) => {  // root and every shadow root below it
    if (root.shadowRoot) deep(root.shadowRoot, sel, out);
    for (const el of root.querySelectorAll('*')) {
      if (el.matches(sel)) out.push(el);
      if (el.shadowRoot) deep(el.shadowRoot, sel, out);
    }
    return out;
  };
  const tick = () => {
    const m = window.__hotline_marks, now = performance.now();
    if (!document.body) return setTimeout(tick, 25);
    if (m.status === undefined && deep(document, '#hotline-status', []).length &&
        deep(document, 'canvas', []).length >= N_FIRST) m.status = now;
    if (m.table === undefined && deep(document, '.hotline-alert-table', [])
        .some(t => deep(t, '.tabulator-row', []).length)) m.table = now;
    if (m.full === undefined && deep(document, '*', [])
        .some(e => e.childElementCount === 0 && e.textContent.includes('Audit log (who')))
      m.full = now;
    if (m.full === undefined) setTimeout(tick, 25);
  };
  setTimeout(tick, 25);
})();
""".replace("N_FIRST", str(N_FIRST))


def _room_load(browser: Any, url: str, size: tuple[int, int]) -> dict[str, float]:
    """One fresh page: seconds from navigation to the status light with the first-stage
    plots drawn, to the first alert-table row, and to every view (``MARKS_JS``)."""
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.add_init_script(MARKS_JS)
    page.goto(url)
    out: dict[str, float] = {}
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and len(out) < 3:
        time.sleep(0.2)
        marks = page.evaluate("() => window.__hotline_marks || {}")
        out = {k: v / 1000 for k, v in marks.items()}
    out.update({k: v / 1000 for k, v in page.evaluate(NAV_JS).items()})
    page.close()
    return out


#: where a load's time went before the marks, from the browser's navigation timing:
#: the HTML's first byte (the server's answer) and the scripts loaded (DOMContentLoaded)
NAV_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
  return n ? {first_byte: n.responseStart, scripts: n.domContentLoadedEventEnd} : {}; }"""


def _clicks(browser: Any, url: str, n: int = 8) -> list[Any]:
    """Seconds from a click on an alert row to its explanation in the why card
    (``tests.support.alert_clicks.time_clicks``: its title names the clicked alert), as the
    browser timed it and as the driver saw it."""
    from tests.support.alert_clicks import ROWS, time_clicks

    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.add_init_script(MARKS_JS)
    page.goto(url)
    page.wait_for_selector(ROWS, timeout=60_000)
    page.wait_for_function("() => window.__hotline_marks.full !== undefined",
                           timeout=60_000)  # every stage on the page: nothing else arrives
    time.sleep(1)
    page.locator(".hotline-alert-table").first.scroll_into_view_if_needed()
    time_clicks(page, 1)  # the first selection builds the why card's figures
    out = time_clicks(page, n, start=1)
    page.close()
    return out


class _Trickle:
    """Alerts and a growing lumisection written once a second, as a live run would."""

    def __init__(self, store: Any, run: int, first_lumi: int) -> None:
        import threading

        self.store, self.run, self.lumi = store, run, first_lumi
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._go, daemon=True)

    def _go(self) -> None:
        from hotline.alerts.records import AlertRecord

        k = 0
        while not self._stop.wait(1.0):
            k += 1
            last = self.store.summaries(run=self.run)[-1]
            last.n_events += 400  # the open lumisection grows, so the status is redone
            self.store.upsert_summaries([last])
            self.store.add_alerts([
                AlertRecord.make(kind="classic", rule="met250", source="hotline", run=self.run,
                                 lumi=self.lumi, event=10**7 + 20 * k + j,
                                 payload={"objects": [["met", 300.0, 0.0, 1.0],
                                                      ["j1", 80.0, 0.5, -1.0]]})
                for j in range(20)])

    def __enter__(self) -> _Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()


def start_server(cfg: Any, hub: Any, port: int) -> Any:
    """The dashboard served in a thread (closed pages' sessions dropped after
    ``SESSION_LIFETIME_MS``); its thread id goes to ``SERVER_TID`` for the CPU meter."""
    from hotline.dashboard.app import serve

    global SERVER_TID
    server = serve(cfg, hub=hub, port=port, threaded=True,
                   check_unused_sessions_milliseconds=500,
                   unused_session_lifetime_milliseconds=SESSION_LIFETIME_MS)
    deadline = time.perf_counter() + 10
    while server.native_id is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    SERVER_TID = server.native_id
    return server


def control_room(browser: Any, args: Any, tmp: Path) -> dict[str, Any]:
    """Phase 0 (see the module docstring)."""
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.hub import build_hub
    from hotline.dashboard.model_info import Threshold
    from tests.support.control_room import THRESHOLDS_EXACT, fill_control_room

    store = SQLiteAlertStore(tmp / "room.db")
    t0 = time.perf_counter()
    fill_control_room(store, run=300, n_lumis=args.lumis, n_alerts=args.alerts,
                      events_per_lumi=20_000)
    print(f"control room: {store.count_alerts():,} alerts, {args.lumis} lumisections written "
          f"in {time.perf_counter() - t0:.1f} s")
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    cfg = load_config(environ={}, cli={"store": {"url": store.url},
                                       "dashboard": {"port": port}})
    hub = build_hub(cfg, store=store, replay=False)
    hub.thresholds = [Threshold(p, t) for p, t in THRESHOLDS_EXACT]
    url = f"http://127.0.0.1:{port}/"
    server = start_server(cfg, hub, port)
    out: dict[str, Any] = {"alerts": args.alerts, "lumis": args.lumis}
    # Chromium keeps its priority here: it draws what is timed (renice_chromium is for the
    # replay phases, where the browsers compete with the replay)
    cold = _room_load(browser, url, ROOM_SIZES["1920x1080"])  # right after the start
    print(f"load average before the page loads: "
          f"{', '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    print(f"cold first load (server just started, warm-up running): status and plots "
          f"{cold.get('status', float('nan')):.2f} s, alert table "
          f"{cold.get('table', float('nan')):.2f} s")
    out["cold"] = cold
    for name, size in ROOM_SIZES.items():
        loads = []
        for _ in range(3):
            time.sleep(EXPIRE_S)  # the previous page's session is gone: one browser loads
            loads.append(_room_load(browser, url, size))
        med = {k: statistics.median(x.get(k, float("nan")) for x in loads)
               for k in ("status", "table", "full", "first_byte", "scripts")}
        print(f"{name}: status and plots {med['status']:.2f} s (target < 2 s), alert table "
              f"{med['table']:.2f} s (target < 3 s), every view "
              f"{med['full']:.2f} s  [median of 3; first byte {med['first_byte']:.2f} s, "
              f"scripts loaded {med['scripts']:.2f} s]")
        out[name] = {"loads": loads, "median": med}
    timed = _clicks(browser, url)
    clicks = [c.browser for c in timed] or [float("nan")]
    driver = [c.driver for c in timed] or [float("nan")]
    print(f"click on an alert row -> its why card drawn (the browser's own clock, click "
          f"event -> first frame naming the alert): median {statistics.median(clicks):.3f} s, "
          f"worst {max(clicks):.3f} s over {len(clicks)} clicks (target < 0.5 s); as the "
          f"Playwright driver saw it: median {statistics.median(driver):.3f} s, worst "
          f"{max(driver):.3f} s")
    out["click_s"] = clicks
    out["click_driver_s"] = driver
    time.sleep(EXPIRE_S)  # closed pages' sessions expire
    with _Trickle(store, 300, args.lumis):
        with CpuMeter() as m0:
            time.sleep(args.cpu_window)
        # the steady state at 1 Hz: the window opens once every view of the page is drawn
        # (its later stages are built after the first; a navigation's one-off cost is in the
        # load figures above), then 3 s more
        pages = [_drawn_page(browser, url)]
        time.sleep(3)
        with CpuMeter() as m1:
            time.sleep(args.cpu_window)
        for pg in pages:
            pg.close()
    per = m1.server - m0.server
    print(f"server CPU per connected browser at 1 Hz (alerts arriving every second): "
          f"{100 * per:.1f} % of a core (server thread {100 * m1.server:.1f} % with 1 page, "
          f"{100 * m0.server:.1f} % with none; target < 10 %)")
    out["cpu_per_browser"] = per
    server.stop()
    store.close()
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_dashboard")
    ap.add_argument("--phase", choices=["all", "room", "replay"], default="all",
                    help="room: the control-room store figures only; replay: the replay "
                         "figures only")
    ap.add_argument("--alerts", type=int, default=100_000, help="alerts in the room store")
    ap.add_argument("--lumis", type=int, default=200, help="lumisections in the room store")
    ap.add_argument("--cpu-window", type=float, default=20.0,
                    help="seconds per CPU measurement of the room phase")
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rate", type=float, default=50_000)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="best of N full-speed replays")
    ap.add_argument("--pin", action="store_true",
                    help="pin the server (and the replay process) to CPU 0, chromium to the rest")
    args = ap.parse_args(argv)
    global PIN
    PIN = args.pin and (os.cpu_count() or 1) > 1
    if PIN:
        psutil.Process().cpu_affinity([0])  # server + replay on CPU 0 (all phases)

    from playwright.sync_api import sync_playwright

    from hotline.alerts.store import SQLiteAlertStore
    from hotline.config import load_config
    from hotline.dashboard.hub import build_hub

    header("dashboard: control room, first render, server CPU per browser, replay with N "
           "sessions")
    print(f"load average now: {', '.join(f'{x:.1f}' for x in psutil.getloadavg())} "
          f"(the machine is shared: figures are upper bounds)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    if args.phase in ("all", "room"):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=CHROMIUM_ARGS)
            room = control_room(browser, args, tmp)
            browser.close()
        if args.phase == "room":
            path = save("dashboard_room", room)
            print(f"results: {path}")
            return 0
    else:
        room = None
    folder = run_folder(args.events)
    store = SQLiteAlertStore(tmp / "alerts.db")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(environ={}, cli={"source": {"archive": str(folder), "step_size": 50_000},
                                       "store": {"url": store.url},
                                       "dashboard": {"port": port}})
    hub = build_hub(cfg, store=store)
    # closed pages' sessions are dropped within ~1 s so they do not tick on in the background
    server = start_server(cfg, hub, port)
    url = f"http://127.0.0.1:{port}/"
    print(f"CPU pinning: {'server+replay on CPU 0, chromium on the others' if PIN else 'none'}; "
          "chromium at nice 19; the replay runs in its own process (dashboard default)")
    print(f"input: run 4242, {args.events:,} events, 20,000 events/LS, "
          f"batches of {cfg.source.step_size:,} (max rate) or rate/10 (paced)")
    out: dict[str, Any] = {"events": args.events, "rate": args.rate, "sessions": args.sessions,
                           "room": room}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        # warm up (imports) and measure the baselines with no session at all
        replay(hub, folder, None)
        base_paced = replay(hub, folder, args.rate)
        base_max = best_replay(hub, folder, args.repeat)
        first_render(browser, url)
        renders = [first_render(browser, url) for _ in range(3)]
        firsts, fulls = [r[0] for r in renders], [r[1] for r in renders]
        print(f"first render (load -> status + rate plots): best {min(firsts):.2f} s, median "
              f"{statistics.median(firsts):.2f} s  (target < 3 s); fully drawn ({N_CANVAS} "
              f"canvases): median {statistics.median(fulls):.2f} s")
        out["first_render_s"], out["full_render_s"] = firsts, fulls

        time.sleep(EXPIRE_S)  # closed pages' sessions expire
        pages = open_pages(browser, url, 1)
        one_paced = replay(hub, folder, args.rate)
        per_browser = one_paced["server_cpu"] - base_paced["server_cpu"]
        for label, r in (("0 browsers", base_paced), ("1 browser ", one_paced)):
            print(f"paced {args.rate:,.0f} ev/s replay, {label}: achieved {r['rate']:,.0f} ev/s; "
                  f"CPU: process {100 * r['process_cpu']:.0f} %, server thread "
                  f"{100 * r['server_cpu']:.1f} %, chromium {100 * r['browser_cpu']:.0f} %")
        print(f"server CPU per connected browser at 1 Hz: {100 * per_browser:.1f} % of a core "
              f"(server-thread CPU, 1 browser minus 0; target < 10 %)")
        out.update(paced_0=base_paced, paced_1=one_paced, cpu_per_browser=per_browser)
        for pg in pages:
            pg.close()
        time.sleep(EXPIRE_S)
        pages = open_pages(browser, url, args.sessions)
        many_max = best_replay(hub, folder, args.repeat)
        many_paced = replay(hub, folder, args.rate)
        slow = 1 - many_max["rate"] / base_max["rate"]
        print(f"full-speed replay, 0 sessions : {base_max['rate']:,.0f} ev/s "
              f"(process CPU {100 * base_max['process_cpu']:.0f} %)")
        print(f"full-speed replay, {args.sessions} sessions: {many_max['rate']:,.0f} ev/s "
              f"(server thread {100 * many_max['server_cpu']:.0f} %, chromium "
              f"{100 * many_max['browser_cpu']:.0f} %)  slow-down {100 * slow:.1f} % "
              f"(target < 10 %); ratio vs baseline {many_max['rate'] / base_max['rate']:.2f}")
        print(f"paced {args.rate:,.0f} ev/s replay, {args.sessions} sessions: achieved "
              f"{many_paced['rate']:,.0f} ev/s (server thread "
              f"{100 * many_paced['server_cpu']:.0f} %, chromium "
              f"{100 * many_paced['browser_cpu']:.0f} %)")
        out.update(max_0=base_max, max_n=many_max, paced_n=many_paced, slowdown=slow)
        for pg in pages:
            pg.close()
        time.sleep(EXPIRE_S)
        base_again = best_replay(hub, folder, args.repeat)
        with InProcessSessions(hub, args.sessions) as sessions:
            emu = best_replay(hub, folder, args.repeat)
        base_max = max(base_max, base_again, key=lambda r: r["rate"])
        print(f"full-speed replay, 0 sessions, best of both baseline rounds: "
              f"{base_max['rate']:,.0f} ev/s")
        slow_emu = 1 - emu["rate"] / base_max["rate"]
        print(f"full-speed replay, {args.sessions} in-process sessions ticking at 1 Hz (server-"
              f"side work only, no browser): {emu['rate']:,.0f} ev/s, slow-down "
              f"{100 * slow_emu:.1f} % ({sessions.ticks} session updates)")
        out.update(max_emulated=emu, slowdown_emulated=slow_emu)
        browser.close()
    server.stop()
    store.close()
    path = save("dashboard", out)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
