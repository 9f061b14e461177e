"""The boundary between the web process and the torch side, held by tests instead of remembered.

- engine.core and engine.jobs import neither torch (nor transformers, peft, trl, datasets, deepspeed) nor gradio.
- The web app (app.py, webui/) starts, builds its page and answers every page-load event with those libraries
  made unimportable: torch is reached only through engine.facade, when a model or tokenizer is asked for.
- webui/ and app.py import from engine.core, engine.jobs and engine.facade only.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_SIDE_LIBRARIES = ("torch", "transformers", "peft", "trl", "datasets", "deepspeed", "accelerate")
WEB_MAY_IMPORT = ("engine.core", "engine.jobs", "engine.facade")

# Runs first in the child: any import of a listed library raises, and is recorded with the importing stack.
BLOCKER = """
import importlib.abc, sys, traceback
BLOCKED = set(sys.argv[1].split(","))
ATTEMPTS = []
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            ATTEMPTS.append((name, "".join(traceback.format_stack(limit=12))))
            raise ImportError(f"{name} is blocked by tests/test_boundary.py")
        return None
sys.meta_path.insert(0, Blocker())
"""


def _run_blocked(body: str, blocked: tuple[str, ...], env_extra: dict | None = None) -> dict:
    script = BLOCKER + body + "\nimport json; print('RESULT', json.dumps({'attempts': ATTEMPTS}))\n"
    proc = subprocess.run([sys.executable, "-c", script, ",".join(blocked)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def _torch_free_modules() -> list[str]:
    names = []
    for package in ("core", "jobs"):
        for path in sorted((ROOT / "engine" / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_torch_free_engine_imports_no_torch_and_no_gradio():
    modules = _torch_free_modules()
    assert len(modules) > 30 and "engine.core.config" in modules and "engine.jobs.device_queue" in modules
    body = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = _run_blocked(body, TORCH_SIDE_LIBRARIES + ("gradio",))
    assert result["attempts"] == [], "\n".join(stack for _, stack in result["attempts"])


def test_the_blocker_catches_an_import_of_torch():
    """The test above can fail: the torch side, imported the same way, is caught at its first import of torch."""
    result = _run_blocked("try:\n    import engine.serve.chat\nexcept ImportError:\n    pass\n", ("torch",))
    assert result["attempts"] and result["attempts"][0][0].split(".")[0] == "torch"


def test_the_web_app_starts_and_loads_its_page_without_torch(tmp_path):
    """create_app builds every tab, then every page-load event runs (as a browser opening the page starts them),
    with torch and its libraries unimportable."""
    body = f"""
import os
os.chdir({str(tmp_path)!r})
sys.path.insert(0, {str(ROOT)!r})
import inspect
from tests.helpers.handlers import call_as_gradio
from webui.app import create_app
demo = create_app()
ran = 0
for fn in demo.fns.values():
    if not any(event == "load" for _, event in fn.targets):
        continue
    out = call_as_gradio(fn.fn, [block.value for block in fn.inputs])
    if inspect.isgenerator(out):
        list(out)
    ran += 1
assert ran >= 3, ran  # the page's own load and the two memory estimates
"""
    result = _run_blocked(body, TORCH_SIDE_LIBRARIES)
    assert result["attempts"] == [], "\n".join(stack for _, stack in result["attempts"])


def _engine_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "engine":
            if node.module == "engine":
                found += [(node.lineno, f"engine.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "engine"]
    return found


def test_the_web_process_reaches_the_torch_side_only_through_the_facade():
    files = [ROOT / "app.py", *sorted((ROOT / "webui").glob("*.py"))]
    wrong = [f"{f.relative_to(ROOT)}:{line} imports {module}" for f in files for line, module in _engine_imports(f)
             if not module.startswith(WEB_MAY_IMPORT)]
    assert wrong == []
    assert any(m == "engine.facade" for f in files for _, m in _engine_imports(f))
