"""Which workspace a browser session acts in (engine.core.workspace decides what that workspace may do).

The app sets the policy once at start (``configure``); every handler that lists, starts, stops, deletes or loads
runs takes ``request: gr.Request`` (Gradio fills it, for the UI and the API alike) and asks ``workspace_of``."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from engine.core.workspace import Workspace

DEFAULT_MAX_QUEUED = 3


@dataclass(frozen=True)
class Policy:
    logins: bool = False  # with logins, each one has its own workspace
    admins: frozenset[str] = field(default_factory=frozenset)
    max_queued: int = DEFAULT_MAX_QUEUED  # waiting jobs one login may hold (logins on)


_policy = Policy()  # set once at start by app.py (configure): the process serves one policy


def configure(policy: Policy) -> None:
    global _policy
    _policy = policy


def policy() -> Policy:
    return _policy


def workspace_of(request: gr.Request | None) -> Workspace:
    """The session's workspace: the login's own (logins on), else the one workspace. A session without a user
    under logins (it cannot happen through Gradio's login) gets a workspace that owns nothing."""
    if not _policy.logins:
        return Workspace()
    user = getattr(request, "username", None) if request is not None else None
    if not user:
        return Workspace(user="\x00nobody")
    return Workspace(user=user, admin=user in _policy.admins)
