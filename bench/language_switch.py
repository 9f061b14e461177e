"""How long a language switch takes in a real browser, from picking the language to the page's own text in it.

Starts the real app (``python app.py``) on a free port with its own saves/configs/exports (or uses ``--url``),
opens the page in Chromium, and switches English -> 中文 -> English ``--repeats`` times. Per switch it reports:
  busy: until the selector shows it is working (the switch seen at once),
  text: until the page's own text is in the new language (the title, every tab's name, and a label on each tab),
  idle: until every request the switch started has been answered (the Runs tab, the plots, the lists),
  task, script: the page's main-thread seconds over the switch (Chromium's TaskDuration, ScriptDuration).
Figures are medians in seconds, with the CPU named (from /proc/cpuinfo): the machine is shared and noisy.

    python bench/language_switch.py                 # 5 round trips, a table
    python bench/language_switch.py --url http://127.0.0.1:7860/ --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import AppProcess, free_port  # noqa: E402
from webui.locales import field_text, t  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
NAMES = {"en": "English", "zh": "中文"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def page_texts(lang: str) -> list[str]:
    """The texts that show the page switched: the title, each tab's name and texts of the tab shown (Train)."""
    return ([t(lang, "title")] + [t(lang, f"tab_{tab}") for tab in ("train", "eval", "chat", "export", "runs")]
            + [field_text(lang, key)[0] for key in ("train.learning_rate", "train.num_train_epochs", "data.cutoff_len")]
            + [t(lang, "preview_dataset"), t(lang, "start")])


_WATCH = """(texts) => { window.__tbSwitch = {};
  const marks = window.__tbSwitch;
  const check = () => {
    const box = document.querySelector('#top-lang');
    if (!marks.busy && box && box.getAttribute('aria-busy') === 'true') marks.busy = performance.now();
    if (!marks.text) {
      const body = document.body.innerText;
      if (texts.every((text) => body.includes(text))) marks.text = performance.now();
    }
  };
  window.__tbObserver?.disconnect();
  window.__tbObserver = new MutationObserver(check);
  window.__tbObserver.observe(document.body, { subtree: true, childList: true, characterData: true,
                                                attributes: true, attributeFilter: ['aria-busy', 'class'] });
}"""


def switch(page, lang: str) -> dict:
    """Pick ``lang`` in the top bar; the three timings of the module doc, in seconds from the pick.

    A MutationObserver notes the moments in the page itself: polling the page's text from here every few ms
    slowed the page it measured."""
    page.get_by_label(t("en" if lang == "zh" else "zh", "lang"), exact=True).click()
    page.evaluate(_WATCH, page_texts(lang))
    before = _main_thread(page)
    t0 = page.evaluate("() => performance.now()")
    page.get_by_role("option", name=NAMES[lang], exact=True).click()
    page.wait_for_function("() => window.__tbSwitch.text", timeout=60_000, polling=200)
    page.wait_for_function("() => !document.querySelector('#top-lang[aria-busy=true], .pending, .generating')",
                           timeout=60_000, polling=100)
    idle = page.evaluate("() => performance.now()")
    marks = page.evaluate("() => window.__tbSwitch")
    after = _main_thread(page)
    return {"busy": (marks.get("busy", idle) - t0) / 1000, "text": (marks["text"] - t0) / 1000,
            "idle": (idle - t0) / 1000, "task": after["TaskDuration"] - before["TaskDuration"],
            "script": after["ScriptDuration"] - before["ScriptDuration"]}


def _main_thread(page) -> dict:
    """The page's main-thread seconds so far (Chromium's Performance metrics): busy time, less sensitive than wall
    time to the other work on a shared machine."""
    session = _SESSIONS.get(id(page))
    if session is None:
        session = _SESSIONS[id(page)] = page.context.new_cdp_session(page)
        session.send("Performance.enable")  # counts from here on
    return {m["name"]: m["value"] for m in session.send("Performance.getMetrics")["metrics"]}


_SESSIONS: dict = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app already running (default: start one)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    app = None
    if not args.url:
        base = Path(tempfile.mkdtemp(prefix="tb-lang-"))
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name in ("saves", "configs", "exports", "workspaces"):
            (base / name).mkdir()
            env[f"TUNEBOARD_{name.upper()}"] = str(base / name)
        app = AppProcess(free_port(), env, log=base / "app.log")
        app.wait_ready(180)
    url = args.url or app.url
    rows = {"zh": [], "en": []}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.get_by_label("Language", exact=True).wait_for(timeout=120_000)
            page.wait_for_timeout(3000)  # the page-load events
            _main_thread(page)
            for _ in range(args.repeats):
                for lang in ("zh", "en"):
                    rows[lang].append(switch(page, lang))
            browser.close()
    finally:
        if app is not None:
            app.stop()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores seen); {args.repeats} switches each way, medians in s")
    columns = ("busy", "text", "idle", "task", "script")
    print("".join(f"{c:>8}" for c in ("to",) + columns) + "   (task, script: the page's main-thread CPU s)")
    for lang, figures in rows.items():
        print(f"{NAMES[lang]:>8}" + "".join(f"{statistics.median(f[c] for f in figures):>8.2f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
