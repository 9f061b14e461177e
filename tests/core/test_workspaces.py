"""Workspaces without a browser: each login's folders, what a login may read and act on, sharing, the fair device
queue and the share of it one login may hold, and admin logins in the auth file."""

from __future__ import annotations

import subprocess
import time

import pytest

from engine.core.paths import configs_dir, exports_dir, saves_dir
from engine.core.rundir import QUEUED, RunDir
from engine.core.workspace import AccessError, Workspace, share_run, user_folder_name, workspaces_dir
from engine.jobs import device_queue
from webui import runner


@pytest.fixture(scope="module")
def waiter():
    """A live process standing in for a queued job's wrapper (a queued run's pid must be alive); in a session of
    its own, since the session's teardown kills the process group of every run's pid."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc.pid
    proc.kill()
    proc.wait()


def _run(workspace: Workspace, name: str, state: str = "finished", pid: int | None = None) -> RunDir:
    run = runner.run_dir_for("SmolLM2-135M-Instruct", "lora", name, workspace.saves)
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_status(state, created_at=time.time(), pid=pid)
    (run.path / "checkpoint-4").mkdir(exist_ok=True)
    (run.path / "adapter_model.safetensors").write_bytes(b"")  # listed as loadable (RunDir.has_final_weights)
    return run


def test_without_logins_the_one_workspace_is_todays_folders(workdirs):
    ws = Workspace()
    assert (ws.saves, ws.configs, ws.exports, ws.data) == (saves_dir(), configs_dir(), exports_dir(), None)
    assert ws.owns(saves_dir() / "m" / "lora" / "r") and ws.can_read("/anything")


def test_each_login_has_its_own_folders_and_odd_names_never_collide(workdirs):
    alice = Workspace("alice")
    assert alice.saves == workspaces_dir() / "alice" / "saves"
    assert {alice.configs.name, alice.exports.name, alice.data.name} == {"configs", "exports", "data"}
    # Names a folder cannot hold as they are: distinct folders, nothing escapes workspaces/.
    names = {user_folder_name(u) for u in ("a b", "a-b", "a/b", "../a", "李雷")}
    assert len(names) == 5 and all("/" not in n and n not in ("..", ".") for n in names)
    assert user_folder_name("李雷") == "李雷"


def test_a_login_reads_and_acts_on_its_own_runs_only(workdirs):
    # (Names of their own: the classroom browser test's alice and bob share a run in the same session.)
    alice, bob, teacher = Workspace("amy"), Workspace("ben"), Workspace("tara", admin=True)
    mine, theirs = _run(alice, "amy-run"), _run(bob, "ben-run")
    for path in (theirs.path, theirs.path / "checkpoint-4", str(theirs.path) + "/../ben-run"):
        assert not alice.can_read(path) and not alice.owns(path)
        with pytest.raises(AccessError) as info:
            alice.check_readable(str(path), "model.adapter_path")
        assert info.value.key == "other_user" and info.value.field == "model.adapter_path"
    assert alice.owns(mine.path / "checkpoint-4") and alice.can_read(mine.path)
    # Runs of the app without logins are nobody's to read but an admin's.
    legacy = _run(Workspace(), "before-logins")
    assert not alice.can_read(legacy.path) and teacher.owns(legacy.path)
    # A model folder elsewhere on the machine, or a hub id, is anyone's to load.
    assert alice.can_read("/models/Qwen2.5-7B-Instruct") and alice.can_read("Qwen/Qwen2.5-0.5B")
    assert teacher.owns(theirs.path) and teacher.owns(mine.path)


def test_a_shared_run_is_readable_by_all_and_owned_by_its_owner_only(workdirs):
    teacher, student = Workspace("teacher2", admin=True), Workspace("student2")
    run = _run(teacher, "class-demo")
    assert not student.can_read(run.path / "checkpoint-4")
    share_run(run, "teacher2")
    assert student.can_read(run.path) and student.can_read(run.path / "checkpoint-4")
    assert not student.owns(run.path)
    assert run.path in [r.path for r in student.shared_runs()]
    entries = runner.checkpoint_entries("SmolLM2-135M-Instruct", "lora", student)
    assert run.path in [r.path for r, _ in entries]
    share_run(run, "teacher2", shared=False)
    assert not student.can_read(run.path)


def test_the_queue_takes_logins_in_turn(workdirs, waiter):
    """Three jobs of carol queued before dave's one: dave's goes second, not fourth."""
    carol, dave = Workspace("carol"), Workspace("dave")
    runs = [_run(carol, f"c{i}", QUEUED, waiter) for i in range(3)] + [_run(dave, "d0", QUEUED, waiter)]
    tickets = []
    try:
        for run in runs:
            tickets.append(device_queue.new_ticket(run))
            time.sleep(0.002)
        order = [t.run.name for t in device_queue.waiting()]
        assert order == ["c0", "d0", "c1", "c2"]
        assert device_queue.position(runs[3]) == 2
    finally:
        for ticket in tickets:
            ticket.path.unlink(missing_ok=True)


def test_one_login_holds_a_limited_share_of_the_queue(workdirs, waiter):
    from webui.run_monitor import check_queue_share
    from webui.workspaces import Policy, configure, policy

    erin, admin = Workspace("erin"), Workspace("root", admin=True)
    before = policy()
    configure(Policy(logins=True, max_queued=2))
    tickets = []
    try:
        check_queue_share(erin)
        for i in range(2):
            tickets.append(device_queue.new_ticket(_run(erin, f"e{i}", QUEUED, waiter)))
        with pytest.raises(AccessError) as info:
            check_queue_share(erin)
        assert info.value.key == "queue_share_full" and info.value.params == {"count": 2, "limit": 2}
        check_queue_share(admin)  # an admin is not held to it
        check_queue_share(Workspace("frank"))
    finally:
        configure(before)
        for ticket in tickets:
            ticket.path.unlink(missing_ok=True)


def test_the_queue_shows_other_logins_jobs_without_their_names(workdirs, waiter):
    from webui.queue_panel import QueueView, cancel_choices, queue_markdown

    gina, hank = Workspace("gina"), Workspace("hank")
    mine, theirs = _run(gina, "gina-job", QUEUED, waiter), _run(hank, "hank-secret-job", QUEUED, waiter)
    view = QueueView(None, (theirs, mine))
    text = queue_markdown("en", view, gina)
    assert "gina-job" in text and "hank-secret-job" not in text and "another user's job" in text
    assert "其他用户的任务" in queue_markdown("zh", view, gina)
    assert [path for _, path in cancel_choices(view, gina)] == [str(mine.path)]
    assert "hank-secret-job" in queue_markdown("en", view, Workspace("boss", admin=True))


def test_admin_logins_in_the_auth_file(tmp_path):
    import app

    logins = tmp_path / "logins.txt"
    logins.write_text("teacher:t-pass:admin\nstudent:s:pass:with:colons\n", encoding="utf-8")
    credentials = app.parse_args(["--auth-file", str(logins)]).credentials
    assert dict(credentials) == {"teacher": "t-pass", "student": "s:pass:with:colons"}
    assert credentials.admins == {"teacher"}
    assert app.parse_args(["--auth", "x:y"]).credentials.admins == frozenset()
    with pytest.raises(SystemExit):
        app.parse_args(["--auth", "nobody::admin"])  # an empty password, however it is written


def test_a_login_adds_datasets_in_its_own_data_folder_and_reads_no_other(workdirs):
    from engine.core.paths import PathError, confined_data_dir
    from webui.dataset_upload import on_identity

    class Login:  # what Gradio hands a handler: the signed-in user
        def __init__(self, username: str):
            self.username, self.session_hash = username, username

    from webui.workspaces import Policy, configure, policy

    before = policy()
    configure(Policy(logins=True))
    ivy, jack = Workspace("ivy"), Workspace("jack")
    try:
        for ws in (ivy, jack):
            assert (ws.ensure_data() / "identity.json").is_file()  # a copy of the demo data to start from
        # The identity builder writes into ivy's folder, refuses the shared demo data and jack's folder.
        status, _ = on_identity("en", str(ivy.data), "ivy_bot", "Ivy", "Lab", "", "", "", False, [], Login("ivy"))
        assert (ivy.data / "ivy_bot.json").is_file(), status
        for folder in ("assets/data", str(jack.data)):
            status, _ = on_identity("en", folder, "sneaky", "X", "Y", "", "", "", True, [], Login("ivy"))
            assert "outside the data folders" in status, status
        assert not (jack.data / "sneaky.json").exists()
        assert "sneaky" not in (Workspace().data_roots()[0] / "dataset_info.json").read_text(encoding="utf-8")
        # Reading: ivy's roots hold the demo data and her folder, not jack's.
        assert confined_data_dir("assets/data", ivy.data_roots()) and confined_data_dir(str(ivy.data), ivy.data_roots())
        with pytest.raises(PathError):
            confined_data_dir(str(jack.data), ivy.data_roots())
        # The machine's rule (what a job applies) takes any login's data folder, never a login's runs.
        assert confined_data_dir(str(jack.data)) == jack.data
        jack.saves.mkdir(parents=True, exist_ok=True)
        with pytest.raises(PathError) as info:
            confined_data_dir(str(jack.saves))
        assert info.value.key in ("outside_data_roots", "data_in_runs")
    finally:
        configure(before)
