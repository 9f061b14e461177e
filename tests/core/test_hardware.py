"""The hardware panel's readings (engine/core/hardware.py) and how they are shown (webui/hardware_panel.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from engine.core.hardware import DeviceUse, HardwareUse, hardware_use, parse_npu_smi, parse_nvidia_smi
from webui.hardware_panel import hardware_html

NVIDIA = """0, NVIDIA H100 80GB HBM3, 12288, 81559, 87
1, NVIDIA H100 80GB HBM3, 3, 81559, [N/A]
"""

NPU = """+------------------------------------------------------------------------------------------------+
| npu-smi 23.0.rc2                 Version: 23.0.rc2                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     910B3               | OK            | 93.2        41                0    / 0             |
| 0                         | 0000:C1:00.0  | 35          0    / 0          3161 / 65536         |
+===========================+===============+====================================================+
| 1     310P3               | OK            | NA          52                0    / 0             |
| 0                         | 0000:01:00.0  | 0           1796 / 21527                           |
+===========================+===============+====================================================+
"""


def test_vendor_tool_output_is_parsed():
    assert parse_nvidia_smi(NVIDIA) == [DeviceUse("GPU", 0, "NVIDIA H100 80GB HBM3", 12288, 81559, 87),
                                        DeviceUse("GPU", 1, "NVIDIA H100 80GB HBM3", 3, 81559, None)]
    assert parse_npu_smi(NPU) == [DeviceUse("NPU", 0, "910B3", 3161, 65536, 35),  # HBM where the chip has it
                                  DeviceUse("NPU", 1, "310P3", 1796, 21527, 0)]
    assert parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver.") == []
    assert parse_npu_smi("") == []


def test_reading_of_this_machine_counts_the_apps_child_processes():
    before = hardware_use()
    assert before.ram_total == psutil.virtual_memory().total and 0 < before.ram_used <= before.ram_total
    assert 0.0 <= before.cpu_percent <= 100.0 and before.cpu_count >= 1
    assert before.app_rss >= psutil.Process().memory_info().rss
    # A child holding 300 MB (touched, so resident) is part of "TuneBoard and its jobs".
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(300 * 2**20); "
                              "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert hardware_use().app_rss - before.app_rss > 250 * 2 ** 20
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while hardware_use().app_rss - before.app_rss > 100 * 2 ** 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hardware_use().app_rss - before.app_rss < 100 * 2 ** 20


def test_panel_text_in_english_and_chinese():
    use = HardwareUse(cpu_percent=37.4, cpu_count=2, ram_used=5 * 2 ** 30, ram_total=20 * 2 ** 30,
                      app_rss=2 * 2 ** 30, devices=(DeviceUse("GPU", 0, "NVIDIA A10", 6144, 24576, 87.0),))
    en = hardware_html("en", use)
    assert "CPU: 37% of 2 cores" in en and "Memory: 5.0 GB of 20.0 GB in use; TuneBoard and its jobs 2.0 GB" in en
    assert "GPU 0 · NVIDIA A10: 6.0 GB of 24.0 GB memory, 87% busy" in en
    assert 'aria-valuenow="25"' in en  # the GPU bar: a quarter of its memory
    zh = hardware_html("zh", use)
    assert "内存：已用 5.0 GB / 20.0 GB" in zh and "利用率 87%" in zh
    none = hardware_html("en", HardwareUse(0.0, 2, 1, 2, 1, ()))
    assert "No GPU or NPU found" in none
