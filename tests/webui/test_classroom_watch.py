"""Classroom load (issue 5): thirty simulated browsers watch one training through the page's own polling.

The bounded version of ``bench/watchers.py`` (whose code it reuses): the real app, a real short training
launched as Start launches it, and 30 pages at the protocol level -- page load (re-attach), then the train
monitor's 1-second tick and the queue panel's 2-second tick, as /config describes them. Every page must
re-attach, see the progress advance, get every tick answered, and end with the same final state; the app
must stay up. The speed against an unwatched run is printed, not asserted: timing belongs in bench/.
"""

from __future__ import annotations

import asyncio
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.harness import short_train_config
from bench.watchers import fetch_config, page_spec, print_table, summary, trial
from engine.core.rundir import RunDir

pytestmark = pytest.mark.slow
CLIENTS = 30
SAMPLES = 40  # 10 optimizer steps, a loss point each: about 40 s on 2 CPU cores


def test_thirty_pages_watch_one_training_to_the_end(app_server, workdirs):
    spec = page_spec(fetch_config(app_server.url))
    cfg = short_train_config(SAMPLES)

    async def both():
        unwatched, _ = await trial(app_server, "unwatched", 1, 0, cfg, spec)
        watched, reports = await trial(app_server, "watched", 1, CLIENTS, cfg, spec)
        return unwatched, watched, reports

    # In its own thread: Playwright's sync API, used by the browser tests of this session, keeps an event loop
    # running in the main thread.
    with ThreadPoolExecutor(1) as pool:
        unwatched, watched, reports = pool.submit(asyncio.run, both()).result()
    total = summary([unwatched, watched])
    print()
    print_table([unwatched, watched], total)

    assert watched["state"] == "finished", watched
    run = RunDir(Path(watched["run"]))
    losses = [e for e in run.read_events() if "loss" in e]
    steps = run.read_status()["total_steps"]
    assert len(reports) == CLIENTS
    for report in reports:
        assert report.attached, f"{report.session_hash}: the page-load event did not re-attach to the run"
        assert not report.failures, f"{report.session_hash}: {report.failures[:3]}"
        seen = [s for s in report.steps_seen if s is not None]
        assert seen and seen == sorted(seen) and seen[-1] > seen[0], \
            f"{report.session_hash}: progress did not advance: {seen}"
        assert report.latencies["train"] and report.latencies["queue"], report.session_hash
    finals = {str(sorted(r.final.items())) for r in reports}
    assert len(finals) == 1, f"pages ended differently: {finals}"
    final = reports[0].final
    assert final == {"status": "Training finished", "step": steps, "progress_pct": 100,
                     "loss_points": len(losses), "timer_active": False}, final
    assert watched["browsers"]["failed_ticks"] == 0
    assert app_server.proc.poll() is None, "the web process died under the load"
    with urllib.request.urlopen(app_server.url, timeout=30) as resp:
        assert resp.status == 200
