"""Local fake model hubs: real HTTP servers that the REAL hub client libraries download from.

Nothing here patches a client: tests point the clients at these servers through their own settings
(``HF_ENDPOINT``; ``MODELSCOPE_DOMAIN`` + a CA bundle) and the clients speak their normal protocol.

Written against, and checked with (tests/test_fake_hubs.py):

* ``huggingface_hub`` 2.4.0 (installed with transformers 5.23; transport ``httpx2``)
  - ``GET  /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info (``sha``, ``siblings``,
    ``gated``, ``config``); ``?blobs=true`` adds sizes / LFS data to the siblings.
  - ``GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=..``: the listing ``snapshot_download`` uses since 1.x
    (one page, no ``Link`` header).
  - ``HEAD|GET /{repo}/resolve/{rev}/{path}``: file metadata + bytes. Headers as the Hub sends them:
    ``X-Repo-Commit``, ``ETag`` (git blob sha1, or the sha256 for LFS files), ``X-Linked-Etag`` /
    ``X-Linked-Size`` for LFS files, ``Content-Length``, ``Accept-Ranges``; ``Range`` answered with 206.
    No ``X-Xet-Hash`` header and no ``xetHash`` in the tree, so the client takes its plain HTTP path even with
    ``hf_xet`` installed (HF_HUB_DISABLE_XET is not needed).
  - Uploads (what ``HfApi.create_repo`` and ``HfApi.create_commit`` send): ``POST /api/validate-yaml`` (a
    README.md's front matter must be YAML, else 400), ``POST /api/repos/create`` (``name``,
    ``organization``, ``visibility``; 409 when it exists), ``POST /api/models/{repo}/preupload/{rev}`` (answers
    ``uploadMode: regular`` for every file, so the bytes come base64-encoded inside the commit and the client needs
    neither LFS nor Xet storage), ``POST /api/models/{repo}/commit/{rev}`` (NDJSON: a header line, then one ``file``
    line per file); a write without the hub's token -> 401. Received repos: ``pushed[repo_id]`` (``private``,
    ``files`` {path: bytes}, ``commits``).
  - Errors as the Hub: ``X-Error-Code: RepoNotFound`` (401 anonymous / 404 with a token) ->
    ``RepositoryNotFoundError``; ``GatedRepo`` (401 anonymous / 403 wrong token) on ``resolve`` ->
    ``GatedRepoError`` (info and tree stay public, as on the Hub); ``RevisionNotFound``; ``EntryNotFound``.
  - Resume: 2.4.0 resumes a cut-off body *within one call* (``http_get`` retries with ``Range: bytes=N-``, N a
    multiple of its 10 MiB read size: cut later than 10 MiB to see a Range);
    its temporary file is per process and deleted on failure, so a new process starts that file again
    (complete files stay in the cache).
* ``modelscope`` 1.40.2, which delegates to ``modelscope-hub`` 0.5.1 (transport ``requests``)
  - endpoint: ``MODELSCOPE_DOMAIN=127.0.0.1:PORT`` -> ``https://127.0.0.1:PORT`` (``MODELSCOPE_ENDPOINT`` would win
    over it, so ``hub_client_env`` removes it); TLS with a throwaway CA made here, trusted through
    ``REQUESTS_CA_BUNDLE`` (requests honours it; ``ca_bundle`` = certifi's roots + ours).
  - ``GET /api/v1/models/{owner}/{name}/repo/files?Revision=&Recursive=&Root=``: the listing
    (``Path``/``Type``/``Size``/``Sha256``; the client checks each file's sha256 itself).
  - ``GET|HEAD /api/v1/models/{owner}/{name}/repo?Revision=&FilePath=``: file bytes, ``Range`` -> 206.
    The partial file (``*.incomplete`` next to the target) survives a failed call, so a new process resumes it.
  - ``GET /api/v1/models/{owner}/{name}`` and ``/revisions`` (legacy ``{"Code","Data","Success"}`` envelope),
    ``GET /openapi/v1/models/{owner}/{name}`` (``{"success","data"}``), ``/api/v1/repos/internalAccelerationInfo`` ->
    404 (the client's Alibaba-cloud region probe).
  - Uploads (what ``HubApi.create_repo`` and ``upload_folder`` send): ``POST /api/v1/models`` (``Path``, ``Name``,
    ``Visibility``: 1 private, 5 public; 400 when it exists, which the client takes as "exists"),
    ``POST /api/v1/repos/models/{repo}/info/lfs/objects/batch`` (every blob gets an upload URL on this hub),
    ``PUT /fake-lfs/{repo}/{sha256}`` (the blob; its sha256 checked), ``POST /api/v1/repos/models/{repo}/commit/{rev}``
    (``actions``: base64 ``content`` for normal files, ``sha256`` of an uploaded blob for LFS ones); a write without
    the hub's token -> 401. Received repos: ``pushed[repo_id]`` as for Hugging Face.
  - Errors: unknown repo -> 404 (``NotExistError``); gated/private repo without a token -> 401
    (``AuthenticationError``), with a wrong token -> 403 (``PermissionDeniedError``). ``snapshot_download``
    re-raises these as ``requests.HTTPError`` whose ``__cause__`` is the modelscope_hub error.

When a client changes: read its snapshot/file download code in site-packages, adjust the routes here, and run
``python -m pytest tests/test_fake_hubs.py``.

Options (both hubs): ``gated`` repo ids (opened by ``token``: HF_TEST_TOKEN / MS_TEST_TOKEN), unknown ids -> not
found, ``drop_after_bytes`` / ``arm_drop()`` (close the connection mid-file: ``drops`` times, for ``drop_file`` or any
larger file), ``throttle_bps`` (per response), ``pause()``/``resume()`` (file bodies stall), and a log of requests
(``requests``, ``range_requests()``, ``dropped_requests()``, ``bytes_served()``). ``hub_client_env()`` gives a
subprocess the environment to use them. Usage summary for other tests: see the fixtures in tests/conftest.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

DEMO_REPO_ID = "tuneboard-test/SmolLM2-135M-Instruct"
GATED_REPO_ID = "tuneboard-test/gated-model"
HF_TEST_TOKEN = "hf_tuneboardFakeHubToken"
MS_TEST_TOKEN = "ms-tuneboard-fake-hub-token"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx", ".model", ".zip")
LFS_MIN_SIZE = 10 * 1024 * 1024
_EPOCH = "2026-01-01T00:00:00.000Z"


# ---------------------------------------------------------------------------------------------- repo index

@dataclass(frozen=True)
class RepoFile:
    path: str  # "/"-separated, relative to the repo root
    local: Path
    size: int
    sha256: str
    blob_sha1: str  # git blob id of the content
    lfs: bool

    @property
    def lfs_pointer(self) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n").encode()

    @property
    def git_oid(self) -> str:
        """The blob id git stores for this path: the pointer's for LFS files."""
        if not self.lfs:
            return self.blob_sha1
        pointer = self.lfs_pointer
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()


@dataclass
class RepoIndex:
    repo_id: str
    folder: Path
    files: dict[str, RepoFile]
    commit: str  # 40 hex, stable for the same content

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


_INDEX_CACHE: dict[tuple, dict[str, RepoFile]] = {}
_INDEX_LOCK = threading.Lock()


def _hash_file(path: Path) -> tuple[str, str]:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as fh:
        while block := fh.read(4 << 20):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def index_folder(repo_id: str, folder: str | os.PathLike) -> RepoIndex:
    """Hash every file of ``folder`` (cached by path, size and mtime: hashing the demo model takes seconds)."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"fake hub repo {repo_id}: {folder} is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                          p.relative_to(folder).parts))
    key = (str(folder), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))
    with _INDEX_LOCK:
        files = _INDEX_CACHE.get(key)
        if files is None:
            files = {}
            for p in paths:
                rel = p.relative_to(folder).as_posix()
                sha256, sha1 = _hash_file(p)
                size = p.stat().st_size
                files[rel] = RepoFile(rel, p, size, sha256, sha1, p.suffix in LFS_SUFFIXES or size >= LFS_MIN_SIZE)
            _INDEX_CACHE[key] = files
    commit = hashlib.sha1(json.dumps([repo_id, [(f.path, f.sha256) for f in files.values()]]).encode()).hexdigest()
    return RepoIndex(repo_id, folder, dict(files), commit)


# ---------------------------------------------------------------------------------------------- TLS

def make_test_tls(folder: str | os.PathLike) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it.

    Returns (ca_pem, server_cert_pem, server_key_pem). Uses ``cryptography`` (a dependency of modelscope-hub).
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)
    valid = (now - _dt.timedelta(hours=1), now + _dt.timedelta(days=2))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TuneBoard fake hub test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(valid[0]).not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, cert_pem, key_pem


# ---------------------------------------------------------------------------------------------- server core

@dataclass
class RequestRecord:
    method: str
    path: str  # request target as sent (with query)
    file: str | None = None  # repo path when the request served file bytes
    range: str | None = None  # the Range header, if any
    status: int = 0
    sent: int = 0  # body bytes written
    dropped: bool = False  # the server cut the connection mid-body
    auth: bool = False  # an Authorization header / session cookie came with it


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TuneBoardFakeHub/1.0"
    timeout = 60  # a stuck client never holds a thread for long

    def do_GET(self):
        self.server.hub._dispatch(self, "GET")

    def do_HEAD(self):
        self.server.hub._dispatch(self, "HEAD")

    def do_POST(self):
        self.server.hub._dispatch(self, "POST")

    def do_PUT(self):
        self.server.hub._dispatch(self, "PUT")

    def log_message(self, format, *args):  # noqa: A002 - quiet: the hub keeps its own request log
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def __init__(self, hub, ssl_context: ssl.SSLContext | None):
        self.hub = hub
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:  # handshake in the handler's thread, not in the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):  # noqa: ARG002 - quiet; kept for a failing test to show
        import traceback

        self.hub.errors.append(traceback.format_exc(limit=8))


class _FakeHub:
    """Shared machinery: the threaded server, file bodies with Range / throttle / drop, the request log."""

    scheme = "http"
    default_token = ""

    def __init__(self, repos: dict[str, str | os.PathLike], gated=(), *, token: str | None = None,
                 drop_after_bytes: int | None = None, drops: int = 1, drop_file: str | None = None,
                 throttle_bps: float | None = None, max_lifetime_s: float = 6 * 3600.0):
        self.repo_folders = {repo_id: Path(folder) for repo_id, folder in repos.items()}
        self.gated = set(gated)
        self.token = token if token is not None else self.default_token
        self.drop_after_bytes = drop_after_bytes
        self.drops = drops
        self.drop_file = drop_file
        self.throttle_bps = throttle_bps
        self.max_lifetime_s = max_lifetime_s
        self.requests: list[RequestRecord] = []
        self.pushed: dict[str, dict] = {}  # repos created through the upload routes (hubs that have them)
        self.errors: list[str] = []  # tracebacks of requests the server failed on (clients that went away, bugs)
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()  # cleared by pause()
        self._repos: dict[str, RepoIndex] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- life cycle -----------------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext | None:
        return None

    def start(self):
        if self._server is not None:
            return self
        self._repos = {repo_id: index_folder(repo_id, folder) for repo_id, folder in self.repo_folders.items()}
        self._server = _Server(self, self._ssl_context())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime_s, self.stop)  # bounded: never outlives a forgotten test
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._running.set()
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake hub is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def repo(self, repo_id: str) -> RepoIndex:
        return self._repos[repo_id]

    # -- options at run time --------------------------------------------------------------------------------
    def pause(self) -> None:
        """File bodies stall (after their headers) until resume(): a download that is surely in progress."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def arm_drop(self, after_bytes: int, times: int = 1, file: str | None = None) -> None:
        """Cut the next ``times`` file bodies (of ``file``, or any file larger than ``after_bytes``) after
        ``after_bytes`` bytes of the file."""
        with self._lock:
            self.drop_after_bytes, self.drops, self.drop_file = after_bytes, times, file

    @contextlib.contextmanager
    def settings(self, **options):
        """``with hub.settings(throttle_bps=2e6):`` -- restored afterwards (cuts: use arm_drop)."""
        old = {name: getattr(self, name) for name in options}
        for name, value in options.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        try:
            yield self
        finally:
            for name, value in old.items():
                setattr(self, name, value)
            self._running.set()

    def reset(self) -> None:
        """Default options and an empty request log (session-scoped hubs: call between tests)."""
        with self._lock:
            self.drop_after_bytes, self.drops, self.drop_file, self.throttle_bps = None, 1, None, None
            self.requests.clear()
            self.errors.clear()
        self._running.set()

    # -- the request log ------------------------------------------------------------------------------------
    def file_requests(self, file: str | None = None, method: str = "GET") -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.file is not None and r.method == method
                    and (file is None or r.file == file)]

    def range_requests(self, file: str | None = None) -> list[RequestRecord]:
        """GETs of file bytes that carried a Range header (a resume)."""
        return [r for r in self.file_requests(file) if r.range]

    def dropped_requests(self) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.dropped]

    def bytes_served(self, file: str | None = None) -> int:
        return sum(r.sent for r in self.file_requests(file))

    # -- plumbing for subclasses ----------------------------------------------------------------------------
    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        rec = RequestRecord(method, h.path, range=h.headers.get("Range"), auth=bool(self._token_of(h)))
        with self._lock:
            self.requests.append(rec)
        try:
            self._route(h, method, rec)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            h.close_connection = True

    def _route(self, h, method: str, rec: RequestRecord) -> None:
        raise NotImplementedError

    def _token_of(self, h) -> str:
        auth = h.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return ""

    def _send(self, h, rec: RequestRecord, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        rec.status = status
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)
            rec.sent = len(body)

    def _send_json(self, h, rec, status: int, obj, headers: dict | None = None) -> None:
        self._send(h, rec, status, json.dumps(obj).encode(), headers)

    def _send_file(self, h, rec: RequestRecord, f: RepoFile, headers: dict) -> None:
        """The file's bytes, honouring ``Range: bytes=a-[b]`` / ``bytes=-n`` (single ranges)."""
        rec.file = f.path
        start, end, status = 0, f.size - 1, 200
        rng = (h.headers.get("Range") or "").strip()
        if rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            try:
                if first == "":
                    start, end = max(0, f.size - int(last)), f.size - 1
                else:
                    start = int(first)
                    end = min(int(last), f.size - 1) if last else f.size - 1
            except ValueError:
                start, end = 0, f.size - 1
            else:
                if start >= f.size or start > end:
                    self._send(h, rec, 416, b"", {**headers, "Content-Range": f"bytes */{f.size}"})
                    return
                status = 206
        length = end - start + 1
        rec.status = status
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(length))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{f.size}")
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        if h.command == "HEAD":
            return

        cut_at = None  # absolute offset in the file where this response is cut
        with self._lock:
            n = self.drop_after_bytes
            if (n is not None and self.drops > 0 and start < n <= end
                    and (self.drop_file is None or self.drop_file == f.path)):
                self.drops -= 1
                cut_at = n
        stop_at = (cut_at if cut_at is not None else end + 1)
        throttle = self.throttle_bps
        chunk = 1 << 20 if not throttle else max(1024, min(64 * 1024, int(throttle / 20)))
        began = time.monotonic()
        pos = start
        with open(f.local, "rb") as fh:
            fh.seek(start)
            while pos < stop_at:
                if not self._running.is_set():
                    while not self._running.wait(0.2):
                        if self._server is None:
                            return
                data = fh.read(min(chunk, stop_at - pos))
                if not data:
                    break
                h.wfile.write(data)
                pos += len(data)
                rec.sent += len(data)
                if throttle:
                    ahead = rec.sent / throttle - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        if cut_at is not None:
            rec.dropped = True
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------------------------- Hugging Face

class FakeHFHub(_FakeHub):
    """The Hugging Face Hub's download routes (see the module docstring), plain HTTP: ``HF_ENDPOINT=hub.url``."""

    default_token = HF_TEST_TOKEN

    def _route(self, h, method: str, rec: RequestRecord) -> None:
        parts = urlsplit(h.path)
        path, query = parts.path, parse_qs(parts.query)  # split before unquoting: revisions come quoted
        if method == "POST":
            return self._upload(h, rec, path)
        if method not in ("GET", "HEAD"):
            return self._send_json(h, rec, 405, {"error": "Method not allowed"})
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            if "/tree/" in rest:
                repo_id, _, tail = rest.partition("/tree/")
                rev, _, sub = tail.partition("/")
                return self._tree(h, rec, unquote(repo_id), unquote(rev), unquote(sub).strip("/"), query)
            repo_id, _, rev = rest.partition("/revision/")
            return self._info(h, rec, unquote(repo_id).strip("/"), unquote(rev) or "main", query)
        if "/resolve/" in path:
            repo_id, _, tail = path.lstrip("/").partition("/resolve/")
            rev, _, file = tail.partition("/")
            return self._resolve(h, rec, unquote(repo_id), unquote(rev), unquote(file))
        return self._send_json(h, rec, 404, {"error": "Not Found"})

    # uploads ----------------------------------------------------------------------------------------------------
    def _upload(self, h, rec, path: str) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if not self.token or self._token_of(h) != self.token:
            msg = "Invalid credentials in Authorization header"
            return self._send_json(h, rec, 401, {"error": msg}, {"X-Error-Message": msg})
        if path == "/api/validate-yaml":  # create_commit has a README.md's front matter checked first
            text = json.loads(body).get("content", "")
            front = text.split("---\n")[1] if text.startswith("---\n") and text.count("---\n") >= 2 else ""
            try:
                yaml.safe_load(front)
            except yaml.YAMLError as exc:
                return self._send_json(h, rec, 400, {"errors": [{"message": str(exc)}]})
            return self._send_json(h, rec, 200, {"warnings": []})
        if path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}"
            if repo_id in self.pushed or repo_id in self._repos:
                return self._send_json(h, rec, 409, {"error": "You already created this model repo",
                                                     "url": f"{self.url}/{repo_id}"})
            with self._lock:
                self.pushed[repo_id] = {"private": request.get("visibility") == "private", "files": {},
                                        "commits": [], "create": request}
            return self._send_json(h, rec, 200, {"url": f"{self.url}/{repo_id}", "name": repo_id})
        rest = path[len("/api/models/"):] if path.startswith("/api/models/") else ""
        for route in ("/preupload/", "/commit/"):
            repo_id, found, _rev = unquote(rest).partition(route)
            if found and repo_id in self.pushed:
                break
        else:
            return self._send_json(h, rec, 404, {"error": "Repository not found"},
                                   {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        if route == "/preupload/":
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                     for f in json.loads(body)["files"]]
            return self._send_json(h, rec, 200, {"files": files, "commitOid": "0" * 40})
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        oid = hashlib.sha1(body).hexdigest()
        with self._lock:
            repo = self.pushed[repo_id]
            for line in lines:
                if line["key"] == "file":
                    repo["files"][line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            repo["commits"].append({"oid": oid, "header": lines[0]["value"] if lines else {},
                                    "paths": [x["value"]["path"] for x in lines if x["key"] != "header"]})
        return self._send_json(h, rec, 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                                             "success": True})

    # errors as the Hub sends them ---------------------------------------------------------------------------
    def _repo_or_error(self, h, rec, repo_id: str) -> RepoIndex | None:
        index = self._repos.get(repo_id)
        if index is None:
            status = 404 if self._token_of(h) else 401  # the Hub answers 401 to anonymous callers
            msg = "Repository not found"
            self._send_json(h, rec, status, {"error": msg},
                            {"X-Error-Code": "RepoNotFound", "X-Error-Message": msg})
        return index

    def _commit_or_error(self, h, rec, index: RepoIndex, rev: str) -> str | None:
        if rev in ("main", index.commit):
            return index.commit
        msg = f"Invalid rev id: {rev}"
        self._send_json(h, rec, 404, {"error": msg}, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": msg})
        return None

    def _gate_or_error(self, h, rec, index: RepoIndex) -> bool:
        if index.repo_id not in self.gated or (self.token and self._token_of(h) == self.token):
            return True
        status = 403 if self._token_of(h) else 401
        msg = (f"Access to model {index.repo_id} is restricted. You must have access to it and be authenticated "
               "to access it. Please log in." if status == 401 else
               f"Access to model {index.repo_id} is restricted and you are not in the authorized list. "
               f"Visit https://huggingface.co/{index.repo_id} to ask for access.")
        self._send_json(h, rec, status, {"error": msg}, {"X-Error-Code": "GatedRepo", "X-Error-Message": msg,
                                                          "X-Repo-Commit": index.commit})
        return False

    # routes ---------------------------------------------------------------------------------------------------
    def _info(self, h, rec, repo_id: str, rev: str, query: dict) -> None:
        index = self._repo_or_error(h, rec, repo_id)
        if index is None or self._commit_or_error(h, rec, index, rev) is None:
            return
        blobs = (query.get("blobs") or ["false"])[0].lower() in ("1", "true")
        siblings = []
        for f in index.files.values():
            sib = {"rfilename": f.path}
            if blobs:
                sib.update(size=f.size, blobId=f.git_oid)
                if f.lfs:
                    sib["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": len(f.lfs_pointer)}
            siblings.append(sib)
        config = {}
        if "config.json" in index.files:
            with contextlib.suppress(ValueError, OSError):
                raw = json.loads(index.files["config.json"].local.read_text())
                config = {k: raw[k] for k in ("architectures", "model_type") if k in raw}
        self._send_json(h, rec, 200, {
            "_id": index.commit[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.partition("/")[0],
            "sha": index.commit, "lastModified": _EPOCH, "createdAt": _EPOCH, "private": False, "disabled": False,
            "gated": "manual" if repo_id in self.gated else False, "downloads": 0, "likes": 0,
            "library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["transformers", "safetensors", "text-generation"], "config": config,
            "siblings": siblings, "spaces": [], "usedStorage": index.total_size,
        })

    def _tree(self, h, rec, repo_id: str, rev: str, sub: str, query: dict) -> None:
        index = self._repo_or_error(h, rec, repo_id)
        if index is None or self._commit_or_error(h, rec, index, rev) is None:
            return
        recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
        prefix = f"{sub}/" if sub else ""
        if sub and sub not in index.files and not any(p.startswith(prefix) for p in index.files):
            msg = f"{sub} does not exist on \"{rev}\""
            return self._send_json(h, rec, 404, {"error": msg}, {"X-Error-Code": "EntryNotFound",
                                                                "X-Error-Message": msg})
        entries, dirs = [], set()
        for f in index.files.values():
            if not f.path.startswith(prefix):
                continue
            rel_parts = f.path[len(prefix):].split("/")
            for depth in range(1, len(rel_parts)):
                d = prefix + "/".join(rel_parts[:depth])
                if (recursive or depth == 1) and d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(),
                                    "size": 0, "path": d})
            if recursive or len(rel_parts) == 1:
                entry = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.lfs_pointer)}
                entries.append(entry)
        self._send_json(h, rec, 200, entries)

    def _resolve(self, h, rec, repo_id: str, rev: str, file: str) -> None:
        index = self._repo_or_error(h, rec, repo_id)
        if index is None:
            return
        commit = self._commit_or_error(h, rec, index, rev)
        if commit is None or not self._gate_or_error(h, rec, index):
            return
        f = index.files.get(file)
        if f is None:
            msg = "Entry not found"
            return self._send_json(h, rec, 404, {"error": msg}, {"X-Error-Code": "EntryNotFound",
                                                                "X-Error-Message": msg, "X-Repo-Commit": commit})
        name = f.path.rsplit("/", 1)[-1]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{f.sha256 if f.lfs else f.blob_sha1}"',
                   "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"}
        if f.lfs:
            headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)})
        self._send_file(h, rec, f, headers)

    # client settings -------------------------------------------------------------------------------------------
    def env(self, root: str | os.PathLike) -> dict[str, str]:
        """The variables a huggingface_hub client (this process's children) needs to use this hub, with its
        own fresh cache and no stored token under ``root``."""
        home = Path(root) / "hf_home"
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}


# ---------------------------------------------------------------------------------------------- ModelScope

class FakeModelScopeHub(_FakeHub):
    """ModelScope's download routes (see the module docstring) over HTTPS with a throwaway CA.

    ``MODELSCOPE_DOMAIN=hub.domain`` and ``REQUESTS_CA_BUNDLE=hub.ca_bundle`` (``env()`` gives both)."""

    scheme = "https"
    default_token = MS_TEST_TOKEN

    def __init__(self, repos, gated=(), *, tls_dir: str | os.PathLike | None = None, **options):
        super().__init__(repos, gated, **options)
        self._tls_tmp = None
        if tls_dir is None:
            self._tls_tmp = tempfile.TemporaryDirectory(prefix="fake-modelscope-tls-")
            tls_dir = self._tls_tmp.name
        self.tls_dir = Path(tls_dir)
        self.ca_file: Path | None = None  # our CA alone
        self.ca_bundle: Path | None = None  # certifi's roots + our CA: what REQUESTS_CA_BUNDLE should name
        self._cert: tuple[Path, Path] | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._cert is None:
            self.ca_file, cert, key = make_test_tls(self.tls_dir)
            self._cert = (cert, key)
            bundle = self.ca_file.read_bytes()
            with contextlib.suppress(ImportError, OSError):
                import certifi

                bundle = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + bundle
            self.ca_bundle = self.tls_dir / "ca-bundle.pem"
            self.ca_bundle.write_bytes(bundle)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self._cert)
        return ctx

    def stop(self) -> None:
        super().stop()
        if self._tls_tmp is not None:
            self._tls_tmp.cleanup()
            self._tls_tmp, self._cert = None, None

    @property
    def domain(self) -> str:
        """What MODELSCOPE_DOMAIN takes: host:port, the client adds ``https://``."""
        return f"127.0.0.1:{self.port}"

    def _token_of(self, h) -> str:
        token = super()._token_of(h)
        if token:
            return token
        for part in (h.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "m_session_id":
                return value
        return ""

    # envelopes -------------------------------------------------------------------------------------------------
    def _legacy(self, h, rec, status: int, data=None, message: str = "success") -> None:
        request_id = uuid.uuid4().hex
        body = {"Code": 200 if status == 200 else status, "Data": data, "Message": message,
                "RequestId": request_id, "Success": status == 200}
        self._send_json(h, rec, status, body, {"X-Request-Id": request_id})

    def _repo_or_error(self, h, rec, repo_id: str, openapi: bool = False) -> RepoIndex | None:
        index = self._repos.get(repo_id)
        if index is None:
            msg = "模型不存在"  # "Model does not exist.": the client translates the server's message
            if openapi:
                self._send_json(h, rec, 404, {"success": False, "code": "ResourceNotFound", "message": msg,
                                              "request_id": uuid.uuid4().hex})
            else:
                self._legacy(h, rec, 404, None, msg)
        return index

    def _gate_or_error(self, h, rec, index: RepoIndex) -> bool:
        if index.repo_id not in self.gated or (self.token and self._token_of(h) == self.token):
            return True
        if self._token_of(h):
            self._legacy(h, rec, 403, None, f"没有访问模型 {index.repo_id} 的权限")  # no permission for the model
        else:
            self._legacy(h, rec, 401, None, "用户未登录")  # "User not logged in."
        return False

    def _revision_ok(self, h, rec, index: RepoIndex, rev: str) -> bool:
        if rev in ("master", "", index.commit):
            return True
        self._legacy(h, rec, 404, None, f"revision {rev} not found")
        return False

    # uploads -----------------------------------------------------------------------------------------------------
    def _upload(self, h, rec, method: str, path: str) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if not self.token or self._token_of(h) != self.token:
            return self._legacy(h, rec, 401, None, "用户未登录")  # "User not logged in."
        if method == "PUT" and path.startswith("/fake-lfs/"):  # an upload URL this hub handed out
            repo_id, _, oid = path[len("/fake-lfs/"):].rpartition("/")
            if hashlib.sha256(body).hexdigest() != oid:
                return self._legacy(h, rec, 400, None, "sha256 mismatch")
            with self._lock:
                self.pushed[repo_id].setdefault("blobs", {})[oid] = body
            return self._legacy(h, rec, 200, {"oid": oid})
        if method == "POST" and path == "/api/v1/models":
            request = json.loads(body)
            repo_id = f"{request.get('Path')}/{request.get('Name')}"
            if repo_id in self.pushed or repo_id in self._repos:
                return self._legacy(h, rec, 400, None, "模型已存在")  # "The model already exists."
            with self._lock:
                self.pushed[repo_id] = {"private": request.get("Visibility") != 5, "files": {}, "commits": [],
                                        "create": request, "blobs": {}}
            return self._legacy(h, rec, 200, {"Path": request.get("Path"), "Name": request.get("Name")})
        prefix = "/api/v1/repos/models/"
        rest = path[len(prefix):] if path.startswith(prefix) else ""
        for route in ("/info/lfs/objects/batch", "/commit/"):
            repo_id, found, _rev = rest.partition(route)
            if found and repo_id in self.pushed:
                break
        else:
            return self._legacy(h, rec, 404, None, "模型不存在")
        request = json.loads(body)
        if route == "/info/lfs/objects/batch":
            objects = [{"oid": o["oid"], "size": o.get("size"), "actions": {"upload": {
                "href": f"{self.url}/fake-lfs/{repo_id}/{o['oid']}"}}} for o in request.get("objects", [])]
            return self._legacy(h, rec, 200, {"objects": objects})
        with self._lock:
            repo = self.pushed[repo_id]
            for action in request.get("actions", []):
                if action.get("type") == "lfs":
                    repo["files"][action["path"]] = repo["blobs"][action["sha256"]]
                else:
                    repo["files"][action["path"]] = base64.b64decode(action.get("content", ""))
            repo["commits"].append({"message": request.get("commit_message"),
                                    "paths": [a["path"] for a in request.get("actions", [])]})
        return self._legacy(h, rec, 200, {"commit": "ok"})

    # routes ------------------------------------------------------------------------------------------------------
    def _route(self, h, method: str, rec: RequestRecord) -> None:
        parts = urlsplit(h.path)
        path, query = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method in ("POST", "PUT"):
            return self._upload(h, rec, method, path)
        if method not in ("GET", "HEAD"):
            return self._legacy(h, rec, 405, None, "method not allowed")
        if path.startswith("/openapi/v1/models/"):
            repo_id = path[len("/openapi/v1/models/"):].strip("/")
            index = self._repo_or_error(h, rec, repo_id, openapi=True)
            if index is not None:
                self._send_json(h, rec, 200, {"success": True, "request_id": uuid.uuid4().hex,
                                              "data": self._info_openapi(index)})
            return None
        if not path.startswith("/api/v1/models/"):
            return self._legacy(h, rec, 404, None, "not found")  # e.g. /api/v1/repos/internalAccelerationInfo
        rest = path[len("/api/v1/models/"):].strip("/")
        segments = rest.split("/")
        repo_id, tail = "/".join(segments[:2]), "/".join(segments[2:])
        index = self._repo_or_error(h, rec, repo_id)
        if index is None:
            return None
        if tail == "":
            return self._legacy(h, rec, 200, self._info_legacy(index))
        if tail == "revisions":
            return self._legacy(h, rec, 200, {"RevisionMap": {
                "Branches": [{"Revision": "master", "CreatedAt": 1767225600, "CreatedBy": "tuneboard",
                              "Description": "", "CommitId": index.commit}],
                "Tags": []}})
        if not self._gate_or_error(h, rec, index):
            return None
        if tail == "repo/files":
            if not self._revision_ok(h, rec, index, query.get("Revision", "master")):
                return None
            return self._legacy(h, rec, 200, {"Files": self._files(index, query)})
        if tail == "repo":
            if not self._revision_ok(h, rec, index, query.get("Revision", "master")):
                return None
            f = index.files.get(query.get("FilePath", "").lstrip("/"))
            if f is None:
                return self._legacy(h, rec, 404, None, "文件不存在")  # file does not exist
            name = f.path.rsplit("/", 1)[-1]
            return self._send_file(h, rec, f, {"Content-Disposition": f"attachment; filename=\"{name}\"",
                                               "ETag": f'"{f.sha256}"'})
        return self._legacy(h, rec, 404, None, "not found")

    def _files(self, index: RepoIndex, query: dict) -> list[dict]:
        recursive = query.get("Recursive", "True").lower() in ("true", "1")
        root = (query.get("Root") or "").strip("/")
        prefix = f"{root}/" if root else ""
        out, dirs = [], set()
        for f in index.files.values():
            if not f.path.startswith(prefix):
                continue
            rel_parts = f.path[len(prefix):].split("/")
            if not recursive and len(rel_parts) > 1:
                d = prefix + rel_parts[0]
                if d not in dirs:
                    dirs.add(d)
                    out.append({"Name": rel_parts[0], "Path": d, "Type": "tree", "Size": 0, "Revision": index.commit})
                continue
            out.append({"Name": rel_parts[-1], "Path": f.path, "Type": "blob", "Size": f.size, "Sha256": f.sha256,
                        "IsLFS": f.lfs, "Id": f.git_oid, "Mode": "33188", "Revision": index.commit,
                        "CommitId": index.commit, "CommitMessage": "upload", "CommitterName": "tuneboard",
                        "CommittedDate": 1767225600, "InCheck": False})
        return out

    def _info_legacy(self, index: RepoIndex) -> dict:
        owner, _, name = index.repo_id.partition("/")
        return {"Id": int(index.commit[:8], 16), "Name": name, "Path": owner, "ChineseName": name,
                "Visibility": 5, "Downloads": 0, "Stars": 0, "CreatedTime": 1767225600, "LastUpdatedTime": 1767225600,
                "Tags": [], "Tasks": [{"Name": "text-generation"}], "Revision": "master",
                "StorageSize": index.total_size, "IsAccessible": index.repo_id not in self.gated}

    def _info_openapi(self, index: RepoIndex) -> dict:
        owner, _, name = index.repo_id.partition("/")
        gated = index.repo_id in self.gated
        return {"id": index.repo_id, "owner": owner, "name": name, "display_name": name, "visibility": "public",
                "downloads": 0, "likes": 0, "created_at": _EPOCH, "last_modified": _EPOCH, "tags": [],
                "tasks": ["text-generation"], "file_size": index.total_size, "private": False, "gated": gated,
                "login_required": gated}

    def env(self, root: str | os.PathLike) -> dict[str, str]:
        """The variables a modelscope client needs to use this hub, with a fresh cache under ``root``."""
        return {"MODELSCOPE_DOMAIN": self.domain, "MODELSCOPE_CACHE": str(Path(root) / "modelscope"),
                "MODELSCOPE_HOME": str(Path(root) / "modelscope_home"), "REQUESTS_CA_BUNDLE": str(self.ca_bundle)}


# ---------------------------------------------------------------------------------------------- environments

# Variables that would send a client elsewhere or hand it a real token: removed by hub_client_env.
_FOREIGN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "MODELSCOPE_ENDPOINT", "MODELSCOPE_API_TOKEN", "MODELSCOPE_DOMAIN", "HF_ENDPOINT",
                 "MODELSCOPE_CREDENTIALS_PATH", "CURL_CA_BUNDLE")


def hub_client_env(root: str | os.PathLike, hf: FakeHFHub | None = None, ms: FakeModelScopeHub | None = None,
                   *, token: bool = False, base: dict | None = None) -> dict[str, str]:
    """A full environment (``base`` or os.environ, copied) for a subprocess -- the app, a job, a client --
    that downloads from the given fake hubs into fresh caches under ``root``. ``token=True`` adds the hubs'
    test tokens (HF_TOKEN / MODELSCOPE_API_TOKEN), which open their gated repos."""
    env = dict(os.environ if base is None else base)
    for name in _FOREIGN_VARS:
        env.pop(name, None)
    if hf is not None:
        env.update(hf.env(root))
        if token:
            env["HF_TOKEN"] = hf.token
    if ms is not None:
        env.update(ms.env(root))
        if token:
            env["MODELSCOPE_API_TOKEN"] = ms.token
    return env
