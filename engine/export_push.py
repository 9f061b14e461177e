"""Push an exported folder (its README model card included) to a Hugging Face or ModelScope repository.

Each hub through its own client: ``huggingface_hub.HfApi`` (create_repo, then one create_commit of every file)
and ``modelscope.hub.api.HubApi`` (create_repo, upload_folder). Endpoints are the clients' own settings
(HF_ENDPOINT; MODELSCOPE_DOMAIN / MODELSCOPE_ENDPOINT), as for downloads. The token comes from the environment
only (HF_TOKEN, MODELSCOPE_API_TOKEN): the form and run.yaml never hold it, and it is never logged.
Both are tested against the fake hubs of tests/helpers/fake_hubs.py, which speak the clients' upload protocols.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.download import HUB_NAMES
from engine.core.export_checks import push_token
from engine.core.hubs import hub_endpoint


def push_folder(folder: Path, hub: str, repo_id: str, private: bool, log=print) -> str:
    """Create ``repo_id`` (kept if it exists) and upload every file of ``folder``; returns the repository's URL."""
    token = push_token(hub, os.environ)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    message = f"Upload {folder.name} exported by TuneBoard"
    if hub == "huggingface":
        from huggingface_hub import CommitOperationAdd, HfApi  # noqa: PLC0415 - only a push needs the client

        api = HfApi(token=token)
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                      for p in files]
        api.create_commit(repo_id, operations, commit_message=message, repo_type="model")
        where = str(url)
    else:
        from modelscope.hub.api import HubApi  # noqa: PLC0415 - modelscope imports torch and is only needed here

        api = HubApi(token=token)  # its upload_folder takes the token from here, not from an argument
        api.create_repo(repo_id, token=token, visibility="private" if private else "public", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message)
        where = f"{hub_endpoint('modelscope')}/models/{repo_id}"
    log(f"pushed {len(files)} files to {HUB_NAMES.get(hub, hub)} repository {repo_id} "
        f"({'private' if private else 'public'}): {where}")
    return where
