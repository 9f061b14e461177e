"""A small live hardware panel (CPU, memory, each GPU/NPU), closed by default and free while hidden: its timer runs
only while the panel is open in the tab on screen."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from engine.core.hardware import HardwareUse, hardware_use
from webui.form import Texts, Translated
from webui.locales import DEFAULT_LANG, t
from webui.run_monitor import bar_html
from webui.shared_reading import SharedReading

REFRESH_S = 2.0
_GB = 1024 ** 3

_machine = SharedReading(hardware_use)  # the machine's reading: the same for every app and page of the process


def reading(max_age_s: float = 1.0) -> HardwareUse:
    """The machine now; every page's refresh within ``max_age_s`` shares one reading (nvidia-smi takes ~50 ms)."""
    return _machine.get(max_age_s)


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / _GB:.1f} GB"


def hardware_html(lang: str, use: HardwareUse) -> str:
    rows = [bar_html(use.cpu_percent, t(lang, "hw_cpu", pct=f"{use.cpu_percent:.0f}", cores=use.cpu_count),
                     t(lang, "hw_cpu_name")),
            bar_html(100.0 * use.ram_used / max(use.ram_total, 1),
                     t(lang, "hw_ram", used=_gb(use.ram_used), total=_gb(use.ram_total), app=_gb(use.app_rss)),
                     t(lang, "hw_ram_name"))]
    for dev in use.devices:
        name = f"{dev.kind} {dev.index} · {dev.name}"
        memory = t(lang, "hw_device_memory", used=_gb(dev.memory_used_mb * 2 ** 20),
                   total=_gb(dev.memory_total_mb * 2 ** 20))
        busy = "" if dev.utilization is None else t(lang, "hw_device_busy", pct=f"{dev.utilization:.0f}")
        rows.append(bar_html(100.0 * dev.memory_used_mb / max(dev.memory_total_mb, 1.0),
                             f"{name}: {memory}{busy}", name))
    if not use.devices:
        rows.append(f'<p class="tb-hw-note">{t(lang, "hw_no_devices")}</p>')
    return '<div class="tb-hw">' + "".join(rows) + "</div>"


@dataclass(eq=False)
class HardwarePanel:
    accordion: gr.Accordion
    view: gr.HTML
    timer: gr.Timer
    is_open: gr.State
    translated: list[Translated] = field(default_factory=list)

    def texts(self) -> list:
        return self.translated


def build_hardware_panel(lang_dd: gr.Dropdown, prefix: str) -> HardwarePanel:
    texts = Texts(DEFAULT_LANG)
    with texts.add(gr.Accordion, "hw_title", open=False, elem_id=f"{prefix}-hw") as accordion:
        view = gr.HTML(elem_id=f"{prefix}-hw-view")
    timer = gr.Timer(REFRESH_S, active=False)
    is_open = gr.State(False)

    def show(lang_: str):
        return gr.Timer(active=True), True, hardware_html(lang_, reading())

    def refresh(lang_: str) -> str:
        return hardware_html(lang_, reading())

    # queue=False: one light HTTP request each, like the queue panel's refresh (a class of pages may have it open).
    accordion.expand(show, lang_dd, [timer, is_open, view], show_progress="hidden", queue=False)
    accordion.collapse(lambda: (gr.Timer(active=False), False), None, [timer, is_open], queue=False)
    timer.tick(refresh, lang_dd, view, show_progress="hidden", queue=False)
    return HardwarePanel(accordion, view, timer, is_open, texts.items)


def pause_hidden_panels(tabs: list[tuple[gr.Tab, HardwarePanel | None]]) -> None:
    """Selecting a tab stops the timers of the panels in the other tabs, and restarts its own panel's if open."""
    panels = [panel for _, panel in tabs if panel is not None]
    for tab, shown in tabs:
        def on_select(*opened, shown=shown):
            return [gr.Timer(active=bool(is_open) and panel is shown) for panel, is_open in zip(panels, opened)]

        tab.select(on_select, [p.is_open for p in panels], [p.timer for p in panels], queue=False)
