"""On/off environment switches (TUNEBOARD_WARM_WORKER, TUNEBOARD_TCMALLOC, TUNEBOARD_FAST_LOSS,
TUNEBOARD_LEAN_ACTIVATIONS): each optimisation can be turned off to compare against, or to rule it out."""

from __future__ import annotations

import os


def env_switch(name: str) -> bool:
    """An on/off environment variable, on unless set to 0, false, no or off."""
    return os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off")
