"""Deployment: the command line, the login, Gradio's file route, and secrets kept out of previews and run files.

The app runs as a real subprocess; every check is a plain HTTP request (urllib, or http.client where a path
must reach the server exactly as written, `..` included)."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from bench.harness import AppProcess, free_port, wait_http
from tests.helpers.runs import ARTIFACTS, ROOT

USER, PASSWORD = "teacher", "pw-Gl4ss-onion-77"
FILE_USER, FILE_PASSWORD = "student", "file-Pass:with-colon-42"  # from --auth-file; a ':' inside is allowed
PASSWD_MARK = b"root:"  # the first entry of /etc/passwd


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TUNEBOARD_AUTH")}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})})


# -- command line -----------------------------------------------------------------------------------------------


def test_help_is_instant_and_names_every_option_and_variable():
    started = time.monotonic()
    result = run_cli("--help", timeout=30)
    assert result.returncode == 0, result.stderr
    for text in ("--host", "--port", "--root-path", "--auth", "--auth-file", "GRADIO_SERVER_NAME",
                 "GRADIO_SERVER_PORT", "GRADIO_ROOT_PATH", "TUNEBOARD_AUTH", "TUNEBOARD_AUTH_FILE", "--data-root",
                 "TUNEBOARD_DATA_ROOTS"):
        assert text in result.stdout, text
    assert time.monotonic() - started < 10
    # Parsing must not import gradio (seconds on a small machine): errors and --help come at once.
    probe = subprocess.run([sys.executable, "-c", "import sys, app; app.parse_args(['--auth', 'a:b']); "
                                                  "print('gradio' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "False", probe.stderr


BAD_AUTH_FILES = [
    # (file text or None for a missing file, what the message must say, a secret it must not echo)
    (None, "not found", None),
    ("# users\n\nalice:fine-pass\nbob-hunter2-without-colon\n", "line 4", "hunter2"),
    ("alice:fine-pass\n:orphan-secret-pw\n", "line 2", "orphan-secret-pw"),
    ("carol:\n", "line 1", None),
    ("# nobody yet\n\n   \n", "no user:password line", None),
    ("alice:first-pass\nalice:second-secret\n", "'alice' is given more than once", "second-secret"),
    ("dir", "is a folder", None),
]


@pytest.mark.parametrize("text,message,secret", BAD_AUTH_FILES)
@pytest.mark.parametrize("via", ["option", "env"])
def test_bad_auth_file_is_a_clear_error(tmp_path, text, message, secret, via):
    path = tmp_path / "logins.txt"
    if text == "dir":
        path.mkdir()
    elif text is not None:
        path.write_text(text, encoding="utf-8")
    if via == "option":
        result = run_cli("--auth-file", str(path), "--port", str(free_port()), timeout=30)
    else:
        result = run_cli("--port", str(free_port()), env={"TUNEBOARD_AUTH_FILE": str(path)}, timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"auth file {path}" in result.stderr, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if secret:
        assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize("args,env,message", [
    (["--auth", "alice-hunter2"], {}, "--auth value 1"),
    (["--auth", "alice:ok", "--auth", "bob"], {}, "--auth value 2"),
    ([], {"TUNEBOARD_AUTH": "alice:ok,hunter2-alone"}, "TUNEBOARD_AUTH entry 2"),
    (["--port", "99999"], {}, "port must be between 1 and 65535"),
    ([], {"GRADIO_SERVER_PORT": "seventy"}, "not a port number"),
])
def test_bad_login_or_port_is_a_clear_error(args, env, message):
    result = run_cli(*args, env=env, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_logins_from_options_file_and_environment(tmp_path, monkeypatch):
    import app

    for key in ("TUNEBOARD_AUTH", "TUNEBOARD_AUTH_FILE", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(key, raising=False)
    logins = tmp_path / "logins.txt"
    logins.write_text(f"# classroom\n\n  {FILE_USER}:{FILE_PASSWORD}  \nbob:b-pass\n", encoding="utf-8")
    args = app.parse_args(["--auth", f"{USER}:{PASSWORD}", "--auth-file", str(logins)])
    assert list(args.credentials) == [(USER, PASSWORD), (FILE_USER, FILE_PASSWORD), ("bob", "b-pass")]
    assert PASSWORD not in repr(args) and FILE_PASSWORD not in repr(args) and USER in repr(args)
    assert (args.host, args.port) == ("127.0.0.1", 7860)

    monkeypatch.setenv("TUNEBOARD_AUTH", "ann:a-pass,ben:b:pass")
    monkeypatch.setenv("TUNEBOARD_AUTH_FILE", str(logins))
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    args = app.parse_args([])
    assert [u for u, _ in args.credentials] == ["ann", "ben", FILE_USER, "bob"]
    assert dict(args.credentials)["ben"] == "b:pass"
    assert (args.host, args.port) == ("0.0.0.0", 7999)
    # The command line replaces the environment's logins instead of adding to them.
    args = app.parse_args(["--auth", "zoe:z-pass", "--host", "127.0.0.1"])
    assert [u for u, _ in args.credentials] == ["zoe", FILE_USER, "bob"]
    assert args.host == "127.0.0.1"


def test_a_bad_thread_count_stops_the_app_at_start(monkeypatch, capsys):
    import app

    monkeypatch.setenv("TUNEBOARD_CPU_THREADS", "two")
    with pytest.raises(SystemExit) as stopped:
        app.parse_args([])
    assert stopped.value.code == 2 and "TUNEBOARD_CPU_THREADS='two'" in capsys.readouterr().err
    monkeypatch.setenv("TUNEBOARD_CPU_THREADS", "1")
    app.parse_args([])


def test_login_check_compares_whole_pairs():
    import app

    check = app.auth_check([(USER, PASSWORD), ("bob", "b-pass")])
    assert check(USER, PASSWORD) and check("bob", "b-pass")
    assert not check(USER, "b-pass") and not check("bob", PASSWORD)
    assert not check(USER, PASSWORD[:-1]) and not check(USER.upper(), PASSWORD) and not check("", "")


def test_exposure_warning_only_for_reachable_apps_without_login(monkeypatch):
    import app

    for key in ("TUNEBOARD_AUTH", "TUNEBOARD_AUTH_FILE", "GRADIO_SERVER_NAME", "GRADIO_SHARE"):
        monkeypatch.delenv(key, raising=False)

    def warning(*argv: str) -> str | None:
        return app.exposure_warning(app.parse_args(list(argv)))

    for host in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        assert warning("--host", host) is None, host
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        assert host in (warning("--host", host) or ""), host
        assert warning("--host", host, "--auth", "a:b") is None
    assert "gradio.live" in (warning("--share") or "")


@pytest.mark.slow
def test_gradio_is_imported_without_rewriting_its_stubs_or_importing_ipython():
    """app.import_gradio (what ``python app.py`` does before building the page): gradio works as usual, its
    component stubs are not regenerated, and IPython stays importable for code that wants it later."""
    probe = (
        "import importlib.util, sys, app\n"
        "app.import_gradio()\n"
        "import gradio as gr, gradio.component_meta as meta\n"
        "meta.create_or_modify_pyi(None, 'x', [])\n"  # the no-op takes anything; gradio's own would fail
        "assert sys.meta_path[0].__class__.__name__ != '_NoStubWriting'\n"
        "print('ipython-loaded', 'IPython' in sys.modules)\n"
        "if importlib.util.find_spec('IPython') is not None:\n"
        "    import IPython\n"
        "with gr.Blocks() as demo:\n"
        "    box = gr.Textbox(label='x')\n"
        "    box.change(lambda v: v, box, box)\n"
        "print('ok', len(demo.fns))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ipython-loaded False" in out.stdout and "ok 1" in out.stdout


def test_public_host_without_login_warns_on_stderr():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEBOARD_AUTH")}
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(port)], cwd=ROOT,
                            env=dict(env, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        # Wait for the warning with a deadline: without it the app would just keep serving.
        while time.monotonic() < deadline and not any(line.startswith("WARNING") for line in lines):
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        proc.stderr.close()
    warning = next((line for line in lines if line.startswith("WARNING")), "")
    assert lines and lines[0] == warning, lines  # printed first, before gradio is even imported
    assert f"0.0.0.0:{port}" in warning and "--auth" in warning and "--auth-file" in warning


# -- the login ------------------------------------------------------------------------------------------------------


class Http:
    """A browser-less client: one cookie jar (the session), plain requests, status codes instead of exceptions."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30) -> tuple[int, bytes]:
        req = urllib.request.Request(self.base + path.lstrip("/"), data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def post_json(self, path: str, payload: dict) -> tuple[int, bytes]:
        return self.request("POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def login(self, user: str, password: str) -> tuple[int, bytes]:
        form = urllib.parse.urlencode({"username": user, "password": password}).encode()
        return self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})

    def upload(self, name: str, content: bytes) -> tuple[int, bytes]:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                f"Content-Type: text/plain\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request("POST", "/gradio_api/upload", body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def raw_get(port: int, path: str, cookie: str | None = None) -> tuple[int, bytes]:
    """GET ``path`` byte for byte: urllib and httpx would resolve `..` segments before sending."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def session_cookie(client: Http) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.jar)


@pytest.fixture(scope="module")
def auth_app(workdirs, tmp_path_factory):
    """The app with two logins (one from --auth, one from --auth-file) and its own Gradio upload folder."""
    base = tmp_path_factory.mktemp("deploy")
    uploads = base / "gradio-uploads"
    logins = base / "logins.txt"
    logins.write_text(f"# classroom logins\n\n{FILE_USER}:{FILE_PASSWORD}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEBOARD_AUTH")}
    env.update(PYTHONUNBUFFERED="1", GRADIO_TEMP_DIR=str(uploads))
    app = AppProcess(free_port(), env, args=["--auth", f"{USER}:{PASSWORD}", "--auth-file", str(logins)],
                     log=ARTIFACTS / "app-auth.log")
    app.uploads = uploads
    try:
        wait_http(app.url, 120)  # the login page answers 200
        yield app
    finally:
        app.stop()


@pytest.mark.slow
def test_api_and_files_refused_without_session_and_served_after_login(auth_app):
    anon, client = Http(auth_app.url), Http(auth_app.url)
    refused = (401, 403)

    # Without a session: no config, no API description, no queue, no upload.
    for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/queue/data?session_hash=x"):
        assert anon.get(path)[0] in refused, path
    assert anon.post_json("/gradio_api/queue/join", {"data": [], "fn_index": 0, "session_hash": "x"})[0] in refused
    assert anon.upload("note.txt", b"uploaded without login")[0] in refused
    # The login page must not carry the API description that /gradio_api/info refuses.
    status, page = anon.get("/")
    assert status == 200 and b"auth_required" in page and b"named_endpoints" not in page

    # A wrong password gets no session.
    assert client.login(USER, PASSWORD + "x")[0] == 400
    assert client.login(FILE_USER, PASSWORD)[0] == 400
    assert client.get("/config")[0] in refused

    status, body = client.login(USER, PASSWORD)
    assert status == 200 and json.loads(body) == {"success": True}
    status, body = client.get("/config")
    assert status == 200
    config = json.loads(body)
    assert config["components"] and config["username"] == USER
    assert client.get("/gradio_api/info")[0] == 200
    assert b"named_endpoints" in client.get("/")[1]

    # Upload with the session, fetch through the file route; without a session the same URL is refused.
    content = f"uploaded by {USER} {uuid.uuid4()}".encode()
    status, body = client.upload("note.txt", content)
    assert status == 200, body
    uploaded = json.loads(body)[0]
    assert uploaded.startswith(str(auth_app.uploads))
    file_url = "/gradio_api/file=" + urllib.parse.quote(uploaded)
    assert client.get(file_url) == (200, content)
    status, body = anon.get(file_url)
    assert status in refused and content not in body

    # The queue: join an event (the page-load handler, given its inputs' values as the page has them) and read it
    # to completion.
    dep = next(d for d in config["dependencies"] if any(t[1] == "load" for t in d["targets"]))
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    session = uuid.uuid4().hex
    join = {"data": [values.get(i) for i in dep["inputs"]], "fn_index": dep["id"], "session_hash": session,
            "trigger_id": None, "event_data": None}
    assert anon.post_json("/gradio_api/queue/join", join)[0] in refused
    status, body = client.post_json("/gradio_api/queue/join", join)
    assert status == 200 and json.loads(body)["event_id"]
    assert anon.get(f"/gradio_api/queue/data?session_hash={session}")[0] in refused
    req = urllib.request.Request(f"{auth_app.url}gradio_api/queue/data?session_hash={session}")
    messages = []
    with client.opener.open(req, timeout=60) as stream:
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:"):
                messages.append(json.loads(line[5:]))
                if messages[-1].get("msg") == "process_completed":
                    break
    assert messages and messages[-1]["msg"] == "process_completed" and messages[-1]["success"], messages

    # The user from the auth file logs in too, with a password that contains ':'.
    other = Http(auth_app.url)
    assert other.login(FILE_USER, FILE_PASSWORD)[0] == 200
    assert json.loads(other.get("/config")[1])["username"] == FILE_USER


def outside_files(workdirs, tmp_path) -> list[tuple[str, bytes]]:
    """(path as sent in the URL, a piece of the file's content) for files that must never be served."""
    run_dir = workdirs["saves"] / "deployment-check" / "lora" / "not-a-run"  # no status.json: no run is listed
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "run.yaml"
    saved.write_text("secret: saved-run-content-41\n", encoding="utf-8")
    app_text = (ROOT / "app.py").read_bytes()[:120]
    depth = "../" * 12
    return [
        ("/etc/passwd", PASSWD_MARK),
        (str(ROOT / "app.py"), app_text),
        ("app.py", app_text),  # relative: resolved against the app's working folder
        ("requirements.txt", (ROOT / "requirements.txt").read_bytes()[:80]),
        (str(saved), b"saved-run-content-41"),
        (f"{depth}etc/passwd", PASSWD_MARK),
        (f"/tmp/gradio/{depth}etc/passwd", PASSWD_MARK),
        (f"{tmp_path}/{depth}etc/passwd", PASSWD_MARK),
        ("/tmp/gradio/%2e%2e/%2e%2e/%2e%2e/etc/passwd", PASSWD_MARK),
        ("%2Fetc%2Fpasswd", PASSWD_MARK),
        ("..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", PASSWD_MARK),
        ("file:///etc/passwd", PASSWD_MARK),
        ("//etc/passwd", PASSWD_MARK),
        (f"{ROOT}/.gradio/../app.py", app_text),
    ]


def assert_not_served(port: int, probes: list[tuple[str, bytes]], cookie: str | None = None) -> None:
    served = []
    for path, piece in probes:
        for url in (f"/gradio_api/file={path}", f"/gradio_api/file/{path.lstrip('/')}"):
            status, body = raw_get(port, url, cookie)
            if status < 400 or piece in body:
                served.append((url, status, body[:80]))
    assert not served, served


@pytest.mark.slow  # starts the app
def test_file_route_serves_no_outside_file_without_login(app_server, workdirs, tmp_path):
    port = int(app_server.url.rstrip("/").rsplit(":", 1)[1])
    client = Http(app_server.url)
    # The route itself works: what the app was given (an upload) comes back.
    content = f"an upload {uuid.uuid4()}".encode()
    status, body = client.upload("mine.txt", content)
    assert status == 200, body
    uploaded = json.loads(body)[0]
    assert raw_get(port, "/gradio_api/file=" + urllib.parse.quote(uploaded)) == (200, content)
    assert_not_served(port, outside_files(workdirs, tmp_path))


def test_file_route_serves_no_outside_file_to_logged_in_users(auth_app, workdirs, tmp_path):
    port = auth_app.port
    client = Http(auth_app.url)
    assert client.login(USER, PASSWORD)[0] == 200
    cookie = session_cookie(client)
    # Links planted inside Gradio's own upload folder must not lead out of it.
    planted = auth_app.uploads / "planted"
    planted.mkdir(parents=True, exist_ok=True)
    for name, target in (("passwd", "/etc/passwd"), ("app.py", ROOT / "app.py"), ("root", ROOT)):
        link = planted / name
        if not link.is_symlink():
            link.symlink_to(target)
    app_text = (ROOT / "app.py").read_bytes()[:120]
    probes = outside_files(workdirs, tmp_path) + [
        (str(planted / "passwd"), PASSWD_MARK), (str(planted / "app.py"), app_text),
        (str(planted / "root" / "app.py"), app_text), (f"{auth_app.uploads}/../../{ROOT.name}/app.py", app_text)]
    assert_not_served(port, probes, cookie)
    # Without the session the same requests are refused before any file is looked at.
    for path, _ in probes[:3]:
        assert raw_get(port, f"/gradio_api/file={path}")[0] == 401


@pytest.mark.browser
def test_heartbeat_and_cancel_refused_without_session(auth_app):
    """Before: both answered anyone; 500 anonymous heartbeat streams were held open."""
    anon, client = Http(auth_app.url), Http(auth_app.url)
    started = time.monotonic()
    for _ in range(50):  # refused at once: no stream is left open
        assert anon.request("GET", f"/gradio_api/heartbeat/{uuid.uuid4().hex}", timeout=5)[0] == 401
    assert time.monotonic() - started < 20
    cancel = {"session_hash": "x", "fn_index": 0, "event_id": "x"}
    assert anon.post_json("/gradio_api/cancel", cancel)[0] == 401
    assert client.login(USER, PASSWORD)[0] == 200
    assert client.post_json("/gradio_api/cancel", cancel)[0] == 200
    req = urllib.request.Request(f"{auth_app.url}gradio_api/heartbeat/{uuid.uuid4().hex}")
    with client.opener.open(req, timeout=30) as stream:  # a signed-in page keeps its heartbeat
        assert stream.status == 200 and stream.readline()


# Routes a visitor without a session reaches: the login page and what it loads, signing in and out, and the route
# Gradio's launch calls itself (app.PUBLIC_PATHS). Any other route, present or added by a later Gradio, must refuse.
PUBLIC_ROUTES = {"/", "/login", "/login/", "/logout", "/theme.css", "/gradio_api/theme.css", "/favicon.ico",
                 "/gradio_api/startup-events", "/static/{path:path}", "/assets/{path:path}", "/svelte/{path:path}"}


def _served_routes(routes, prefix: str = ""):
    """(path, methods) of every route, those of included routers and mounted apps too; an unknown kind fails."""
    from starlette.routing import Mount, Route, WebSocketRoute

    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's include_router: the router's routes, under its prefix
            yield from _served_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield prefix + route.path, ["GET"]
            yield from _served_routes(route.routes, prefix + route.path)
        else:
            assert isinstance(route, (Route, WebSocketRoute)), route
            yield prefix + route.path, sorted(getattr(route, "methods", None) or ["GET"])


@pytest.mark.slow
def test_every_route_refuses_a_client_without_session(workdirs):
    """Every route the app serves, read from the running FastAPI app (Gradio's, as app.py launches it with a login),
    asked without a session: all but PUBLIC_ROUTES refuse; the public ones serve no app data."""
    import re

    import app as tuneboard
    from webui.app import create_app

    args = tuneboard.parse_args(["--auth", f"{USER}:{PASSWORD}", "--port", str(free_port())])
    demo = create_app()
    try:
        served = list(_served_routes(tuneboard.serve(demo, args).routes))
        assert len(served) > 60 and {"/gradio_api/heartbeat/{session_hash}", "/gradio_api/cancel"} <= {
            path for path, _ in served}
        assert {path for path, _ in served} >= PUBLIC_ROUTES  # a public route Gradio dropped leaves the list
        client = Http(demo.local_url)
        answered = []
        for path, methods in served:
            url = re.sub(r"\{[^}]+\}", "x", path)
            for method in methods:
                try:
                    status, body = client.request(method, url, b"{}" if method in ("POST", "PUT") else None,
                                                  {"Content-Type": "application/json"}, timeout=5)
                except TimeoutError:  # a stream held open for an anonymous client
                    answered.append((method, path, "still open after 5 s"))
                    continue
                if path in PUBLIC_ROUTES:
                    assert b"named_endpoints" not in body and b'"elem_id"' not in body, (method, path)  # no app
                elif status != 401:
                    answered.append((method, path, status, body[:80]))
        assert answered == [], "\n".join(f"{a[0]} {a[1]} {a[2]}" for a in answered)
        # The refusal does not depend on how the path is written.
        for path in ("/gradio_api/heartbeat/x/", "//gradio_api/cancel", "/gradio_api/./cancel", "/GRADIO_API/cancel"):
            assert raw_get(args.port, path)[0] in (401, 404, 405), path
    finally:
        demo.close()


@pytest.mark.slow
def test_login_page_in_browser_then_the_app(auth_app, browser):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(auth_app.url)
        page.get_by_text("请登录 TuneBoard", exact=False).wait_for(timeout=30_000)
        page.locator("input[type=text]").fill(USER)
        page.locator("input[type=password]").fill("not-the-password")
        page.get_by_role("button").click()
        page.get_by_text("凭据不正确").wait_for(timeout=15_000)  # Gradio's own message, in the browser's language
        page.locator("input[type=text]").fill(USER)  # a failed login empties the form
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button").click()
        page.locator("#tb-title").wait_for(timeout=60_000)
        assert "TuneBoard" in page.locator("#tb-title").inner_text()
    finally:
        if page.locator("#tb-title").count() == 0:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "FAILED-login.png"), full_page=True)
        context.close()


def test_passwords_never_in_app_output(auth_app):
    """Runs after the tests above have logged in, failed logins included."""
    text = auth_app.log.read_text(encoding="utf-8", errors="replace")
    assert "Running on" in text  # the log is the app's real output
    for secret in (PASSWORD, FILE_PASSWORD, PASSWORD + "x"):
        assert secret not in text


# -- secrets in previews and run files --------------------------------------------------------------------------

SECRETS = {"WANDB_API_KEY": "secret-xyz-wandb-0042", "HF_TOKEN": "hf_secretTokenForTests0042",
           "HUGGING_FACE_HUB_TOKEN": "hf_secretHubToken0042", "MLFLOW_TRACKING_PASSWORD": "mlflow-secret-0042",
           "TUNEBOARD_AUTH": f"{USER}:{PASSWORD}"}


@pytest.mark.parametrize("distributed", [False, True])
def test_secrets_stay_out_of_preview_and_run_yaml(tmp_path, monkeypatch, distributed):
    from engine.core.config import RunConfig
    from webui import runner

    monkeypatch.setenv("TUNEBOARD_SAVES", str(tmp_path / "saves"))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # one the preview does show: environment handling is exercised
    cfg = RunConfig()
    cfg.data.datasets = ["identity"]
    cfg.train.report_to = "wandb"
    if distributed:
        cfg.distributed.nproc_per_node = 2
    cfg.validate()
    cfg.export.export_dir = str(tmp_path / "exports" / "secret-check")
    run = runner.run_dir_for("demo", "lora", f"secrets-{int(distributed)}")
    run.path.mkdir(parents=True, exist_ok=True)
    texts = {}
    for command in ("train", "eval", "export"):
        texts[f"preview {command}"] = runner.command_preview(run, cfg, command)
        path = run.path / f"{command}.yaml"
        cfg.save(path, command)
        texts[f"{command}.yaml"] = path.read_text(encoding="utf-8")
    cfg.save(run.config_path)
    texts["run.yaml"] = run.config_path.read_text(encoding="utf-8")
    assert "CUDA_VISIBLE_DEVICES=0" in texts["preview train"]
    assert ("torch.distributed.run" in texts["preview train"]) == distributed
    assert "report_to: wandb" in texts["run.yaml"]
    leaks = [(name, key) for name, text in texts.items() for key, value in SECRETS.items() if value in text]
    assert not leaks, leaks
