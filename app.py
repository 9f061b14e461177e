"""TuneBoard: fine-tune LLMs in the browser. ``python app.py --help`` lists the options."""

from __future__ import annotations

import argparse
import hmac
import importlib.abc
import importlib.machinery
import importlib.util
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from engine.core.cpu_threads import fixed_threads
from engine.core.data.upload import MAX_UPLOAD_MB
from engine.core.devices import web_process_env
from engine.core.paths import DATA_ROOTS_ENV
from engine.facade import preload_libraries
from engine.jobs import warm_worker

# The login page comes before any language choice, so it greets in both languages.
LOGIN_MESSAGE = "TuneBoard — please sign in. / 请登录 TuneBoard。"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class Logins(tuple):
    """(user, password) pairs whose repr names the users only, so a printed or logged namespace shows no password.
    ``admins``: the users whose line ends in ``:admin`` (they see and manage every workspace)."""

    admins: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"Logins(users={[user for user, _ in self]})"


class AuthError(ValueError):
    """A login given on the command line, in the environment or in an auth file is unusable."""


ADMIN_SUFFIX = ":admin"


def parse_credential(text: str, where: str) -> tuple[str, str, bool]:
    """``user:password`` -> (user, password, False); ``user:password:admin`` -> (user, password, True). Errors name
    ``where`` but never echo the text: it holds a password."""
    admin = text.rstrip().endswith(ADMIN_SUFFIX) and text.count(":") >= 2
    if admin:
        text = text.rstrip()[:-len(ADMIN_SUFFIX)]
    user, sep, password = text.partition(":")
    user = user.strip()
    if not sep or not user or not password:
        raise AuthError(f"{where}: expected user:password (or user:password:admin) with a non-empty user and "
                        f"password")
    return user, password, admin


def read_auth_file(path: str) -> list[tuple[str, str, bool, str]]:
    """(user, password, admin, where) for each ``user:password[:admin]`` line; blank lines and ``#`` comments are
    skipped, surrounding spaces ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthError(f"auth file {path}: not found") from None
    except IsADirectoryError:
        raise AuthError(f"auth file {path}: is a folder, not a file") from None
    except PermissionError:
        raise AuthError(f"auth file {path}: permission denied") from None
    except UnicodeDecodeError:
        raise AuthError(f"auth file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise AuthError(f"auth file {path}: cannot be read ({exc.strerror})") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            where = f"auth file {path} line {number}"
            found.append((*parse_credential(line, where), where))
    if not found:
        # An empty file must not silently start an app without a login.
        raise AuthError(f"auth file {path}: no user:password line found")
    return found


def collect_credentials(auth: list[str], auth_file: str | None, auth_from_env: bool) -> Logins:
    source = "TUNEBOARD_AUTH entry" if auth_from_env else "--auth value"
    entries = []
    for i, value in enumerate(auth, start=1):
        where = f"{source} {i}"
        entries.append((*parse_credential(value, where), where))
    if auth_file:
        entries += read_auth_file(auth_file)
    seen: set[str] = set()
    for user, _, _, where in entries:
        if user in seen:
            raise AuthError(f"{where}: user {user!r} is given more than once")
        seen.add(user)
    logins = Logins((user, password) for user, password, _, _ in entries)
    logins.admins = frozenset(user for user, _, admin, _ in entries if admin)
    return logins


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def _folder(text: str) -> str:
    """An existing folder, as an absolute path (a relative one is taken from the current folder)."""
    path = Path(text).expanduser()
    if "\x00" in text or not path.is_dir():
        raise argparse.ArgumentTypeError(f"not an existing folder: {text!r}")
    return str(path.resolve())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="TuneBoard web UI (LlamaBoard-style fine-tuning in the browser).")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to bind (default 127.0.0.1; env GRADIO_SERVER_NAME). Use 0.0.0.0 to serve "
                             "others, with a login (--auth or --auth-file).")
    parser.add_argument("--port", type=_port, default=env.get("GRADIO_SERVER_PORT") or "7860",
                        help="port (default 7860; env GRADIO_SERVER_PORT)")
    parser.add_argument("--root-path", default=env.get("GRADIO_ROOT_PATH", ""),
                        help="path prefix when served behind a reverse proxy, e.g. /user/alice/proxy/7860 "
                             "(env GRADIO_ROOT_PATH)")
    parser.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                        help="require this login; repeat for several users (env TUNEBOARD_AUTH, comma-separated). "
                             "Other local users can read command lines: prefer --auth-file on shared machines.")
    parser.add_argument("--auth-file", metavar="PATH", default=env.get("TUNEBOARD_AUTH_FILE") or None,
                        help="file of user:password lines, '#' comments and blank lines ignored "
                             "(env TUNEBOARD_AUTH_FILE)")
    parser.add_argument("--max-queued", type=int, default=int(env.get("TUNEBOARD_MAX_QUEUED") or 3), metavar="N",
                        help="with logins: jobs one login may have waiting in the device queue (default 3; env "
                             "TUNEBOARD_MAX_QUEUED). The queue takes the logins' jobs in turn.")
    parser.add_argument("--share", action="store_true", default=env.get("GRADIO_SHARE", "") in ("1", "true"),
                        help="also create a public gradio.live link (needs internet; env GRADIO_SHARE=1)")
    parser.add_argument("--data-root", action="append", type=_folder, default=[], metavar="PATH",
                        help="a folder the Data dir may name (or a folder inside it) besides assets/data; repeat for "
                             "several. Adds to env TUNEBOARD_DATA_ROOTS (os.pathsep-separated). Any other data folder "
                             "is refused, for reading and writing.")
    args = parser.parse_args(argv)
    # append + a default list would add to the environment's users; the command line replaces them instead.
    auth_from_env = args.auth is None
    auth = args.auth if not auth_from_env else [v for v in env.get("TUNEBOARD_AUTH", "").split(",") if v.strip()]
    try:
        args.credentials = collect_credentials(auth, args.auth_file, auth_from_env)
    except AuthError as exc:
        parser.error(str(exc))  # usage and message on stderr, exit code 2, no traceback
    del args.auth  # the passwords live in args.credentials only, whose repr hides them
    try:
        fixed_threads()  # a bad TUNEBOARD_CPU_THREADS stops the app here, not every job and chat answer later
    except ValueError as exc:
        parser.error(str(exc))
    return args


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only if every address it resolves to is
        infos = socket.getaddrinfo(host, None)
        return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
    except (OSError, ValueError):
        return False


def exposure_warning(args: argparse.Namespace) -> str | None:
    """The warning for an app others can reach without a login, or None."""
    if args.credentials:
        return None
    if args.share:
        where = "a public gradio.live link"
    elif not is_loopback(args.host):
        where = f"{args.host}:{args.port}"
    else:
        return None
    return (f"WARNING: TuneBoard is served on {where} without a login: anyone who can reach it can read your "
            f"runs and start jobs on this machine. Add --auth USER:PASSWORD or --auth-file PATH "
            f"(or TUNEBOARD_AUTH / TUNEBOARD_AUTH_FILE).")


def auth_check(credentials: list[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Gradio's login check: constant-time comparisons against every entry, so timing reveals neither which
    users exist nor how much of a password matched."""
    table = [(user.encode(), password.encode()) for user, password in credentials]

    def check(username: str, password: str) -> bool:
        given_user, given_password = username.encode(), password.encode()
        ok = False
        for user, secret in table:
            ok |= hmac.compare_digest(given_user, user) & hmac.compare_digest(given_password, secret)
        return ok

    return check


def hide_api_info_before_login(request) -> dict:
    """Jinja context processor for Gradio's page template. Gradio 6 embeds the full API description
    (every endpoint, parameter, default and choice) in the login page it serves to visitors without a session,
    although /gradio_api/info refuses them; this blanks it until they have logged in. None, not {}: the page's
    client then fetches /gradio_api/info itself once the login has succeeded. Registered only when a login is
    set; if Gradio's session internals ever change, it blanks the description for everyone (fails closed)."""
    return {} if signed_in(request.app, request.cookies) else {"gradio_api_info": None}


def signed_in(app, cookies) -> bool:
    """Whether ``cookies`` hold a session that signing in to Gradio's ``app`` gave (its login route's cookies)."""
    cookie_id = getattr(app, "cookie_id", None)
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return bool(token) and token in getattr(app, "tokens", {})


# What a visitor without a session may fetch: the login page and what it loads (Gradio's scripts, styles and fonts,
# the theme, the icon), the routes that sign in and out, and startup-events, which Gradio's launch itself calls
# without a session (it runs the app's startup events once, then only answers). tests/test_deployment.py checks
# every route the app serves.
PUBLIC_PATHS = frozenset({"/", "/login", "/login/", "/logout", "/theme.css", "/gradio_api/theme.css", "/favicon.ico",
                          "/gradio_api/startup-events"})
PUBLIC_PREFIXES = ("/static/", "/assets/", "/svelte/")


def route_path(scope: dict) -> str:
    """The request's path as the router matches it: without the root path where the server includes it."""
    path, root = scope["path"], scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root):] or "/"
    return path


class SessionRequired:
    """ASGI middleware of a server with logins: a request without a session is refused (401) unless it is for the
    login page or what it loads (PUBLIC_PATHS). Gradio guards most of its routes itself but not all: its heartbeat
    stream and cancel route answered anyone (an anonymous client held hundreds of streams open), and a later
    release may add more; this refuses them all in one place."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            from starlette.requests import HTTPConnection  # noqa: PLC0415 - keeps --help instant
            from starlette.responses import JSONResponse  # noqa: PLC0415 - keeps --help instant

            path = route_path(scope)
            public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
            if not public and not signed_in(scope.get("app"), HTTPConnection(scope).cookies):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})  # before accepting: an HTTP 403
                else:
                    await JSONResponse({"detail": "Not authenticated"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _NoStubWriting(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads ``gradio.component_meta`` with its ``create_or_modify_pyi`` turned into a no-op.

    Gradio's component metaclass regenerates the ``.pyi`` type stub of every component class each time gradio
    is imported: it reads and parses the components' source and rewrites the stubs inside site-packages where
    it may. That is an aid for gradio's own development; the wheel already ships the stubs, and a server
    should not write into its installed packages. It is the largest part of ``import gradio``, and so of the
    time before the page answers (README, Benchmarks). If a gradio release moves the function, nothing
    is changed."""

    MODULE = "gradio.component_meta"

    def find_spec(self, fullname, path, target=None):  # noqa: ARG002
        if fullname != self.MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        if callable(getattr(module, "create_or_modify_pyi", None)):
            module.create_or_modify_pyi = lambda *_a, **_k: None


def import_gradio() -> None:
    """``import gradio``, without what it does at import that this server has no use for: the stub
    rewriting above, and its IPython cell magic (IPython is imported when installed, as in notebook
    environments: 0.3 s more). Run inside an IPython session, gradio is imported as usual."""
    if "gradio" in sys.modules:
        return
    finder = _NoStubWriting()
    sys.meta_path.insert(0, finder)
    hide_ipython = "IPython" not in sys.modules
    if hide_ipython:
        sys.modules["IPython"] = None  # type: ignore[assignment] # an import of it fails at once: "not installed"
    try:
        import gradio  # noqa: F401, PLC0415 - imported here with stub writing and IPython kept out
    finally:
        sys.meta_path.remove(finder)
        if hide_ipython and sys.modules.get("IPython", 0) is None:
            del sys.modules["IPython"]  # later code may import it as usual


def configure_gradio() -> None:
    """Gradio's usage analytics off (no calls home from a classroom or a cluster; GRADIO_ANALYTICS_ENABLED=True
    turns them back on), and two costs Gradio 6 adds to every event, which a class of pages polling every
    second multiplies:
    its queue rebuilds a pandas table of its last 10,000 events after each event, for a monitoring page this
    app does not enable (read when ``demo.queue()`` makes the queue; a value already in the environment wins);
    and it tries ``import matplotlib`` twice per event, a search of every sys.path entry each time when
    matplotlib is not installed (this app draws with plotly): a missing module is recorded as missing, as
    Python allows, so the import fails at once."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


# Gradio's queue loop sleeps 1 ms between looks at an empty queue, and its progress loop 10 ms: about a thousand
# wake-ups a second for an app with no page open, CPU taken from the training job beside it (bench/suite.py,
# "cold", measures it). An event starts at most 25 ms later; progress bars (gr.Progress) are all the second loop
# sends, and this app has none.
QUEUE_IDLE_POLL_S = 0.025
PROGRESS_POLL_S = 0.1


def calm_idle_queue(demo) -> None:
    """Make the queue's idle polling less eager (see QUEUE_IDLE_POLL_S); a Gradio without these attributes is
    left as it is."""
    queue = getattr(demo, "_queue", None)
    if queue is None:
        return
    for name, seconds in (("sleep_when_free", QUEUE_IDLE_POLL_S), ("progress_update_sleep_when_free", PROGRESS_POLL_S)):
        if getattr(queue, name, seconds) < seconds:
            setattr(queue, name, seconds)


def serve(demo, args: argparse.Namespace):
    """Serve ``demo`` as ``args`` say, with its queue; returns Gradio's app (FastAPI) once the page answers."""
    from webui.app import A11Y_JS, CSS  # noqa: PLC0415 - imports gradio: after import_gradio()

    app_kwargs = {}
    if args.credentials:
        from gradio import routes  # noqa: PLC0415 - after import_gradio()
        from starlette.middleware import Middleware  # noqa: PLC0415 - keeps --help instant

        if hide_api_info_before_login not in routes.templates.context_processors:
            routes.templates.context_processors.append(hide_api_info_before_login)
        app_kwargs["middleware"] = [Middleware(SessionRequired)]
    demo.queue(default_concurrency_limit=8)
    calm_idle_queue(demo)
    server_app, _, _ = demo.launch(
        server_name=args.host, server_port=args.port, root_path=args.root_path or None, share=args.share,
        auth=auth_check(args.credentials) if args.credentials else None,
        auth_message=LOGIN_MESSAGE if args.credentials else None, app_kwargs=app_kwargs,
        css=CSS, js=A11Y_JS, footer_links=["api", "settings"], show_error=True, prevent_thread_lock=True,
        max_file_size=f"{MAX_UPLOAD_MB}mb",  # the Add dataset panel's limit; the engine checks it too
        # Gradio's run history copies every event's inputs and outputs into the browser's localStorage and
        # rewrites all of it on each event: a classroom machine would keep one login's form values for the next,
        # and each language switch got slower (3 s, then 6, 7, ...) as that store grew (bench/language_switch.py).
        run_history=False)
    return server_app


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Training and export processes inherit this environment; they have no use for the logins.
    os.environ.pop("TUNEBOARD_AUTH", None)
    # Every check of a data folder reads the roots from the environment: this process's and its jobs' (a forged
    # run.yaml is checked in the job too).
    if args.data_root:
        os.environ[DATA_ROOTS_ENV] = os.pathsep.join(filter(None, [os.environ.get(DATA_ROOTS_ENV), *args.data_root]))
    # The web process's device settings (GPU numbering, torch-npu's autoload, OpenMP's sleeping waits where chat
    # runs on the CPU: engine.core.devices.web_process_env), set here in main (importing app.py, as tests do, changes
    # nothing) before anything imports torch; an exported value wins. Jobs get their own (engine.jobs.launch).
    for key, value in web_process_env().items():
        os.environ.setdefault(key, value)
    warning = exposure_warning(args)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    configure_gradio()
    import_gradio()
    from webui.app import create_app  # noqa: PLC0415 - keeps --help instant
    from webui.workspaces import Policy, configure  # noqa: PLC0415 - keeps --help instant

    configure(Policy(logins=bool(args.credentials), admins=args.credentials.admins, max_queued=max(1, args.max_queued)))
    demo = create_app()
    serve(demo, args)
    # Only now, with the page answering (their imports would slow the server's start on a small machine): the
    # warm worker that Start forks runs from, and the libraries the first Load model needs.
    warm_worker.start()
    threading.Thread(target=preload_libraries, name="preload", daemon=True).start()
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
