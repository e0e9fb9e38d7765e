"""`python -m training push --checkpoint DIR --repo-id ID`: upload a checkpoint folder to the Hugging Face Hub.

The folder already is a model repository (weights, config, task files, model card, report PNGs); resume
state and training-only files stay behind.
"""

from __future__ import annotations

from pathlib import Path

from training import checkpoint as ckpt
from training.card import CARD_NAME, write_model_card
from training.errors import TriptychError
from training.tasks import get_task

# Needed only to continue a run on the machine that trained it (besides each task's `local_files`).
LOCAL_ONLY = [ckpt.RESUME_NAME, "*.tmp", ".*"]



class PushError(TriptychError):
    """A checkpoint that could not be uploaded to the Hub; the message says why and what to do."""

def local_patterns(config: dict) -> list[str]:
    """File patterns of a checkpoint folder that stay on the machine that trained it: never pushed."""
    return [*LOCAL_ONLY, *get_task(config["task"]).local_files]


def push(folder, repo_id: str, *, private: bool = False, token: str | None = None, dataset_id: str | None = None,
         api=None):
    """Create `repo_id` if needed and upload `folder` in one commit; returns the Hub's commit info."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    config = ckpt.read_config(folder)           # refuse to upload something the demo cannot load
    ckpt.read_weights(folder)
    if dataset_id or not (folder / CARD_NAME).is_file():
        write_model_card(folder, dataset_id)
    api = api or HfApi(token=token)
    acc = config.get("metrics", {}).get("accuracy")
    message = f"Upload {config['task']} model {folder.name}" + (f" (validation accuracy {acc:.4f})" if acc else "")
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 ignore_patterns=local_patterns(config),
                                 commit_message=message)
    except Exception as e:   # offline, no token, no write access: say so instead of a traceback
        raise PushError(f"could not push {folder} to the Hub repository {repo_id}: {type(e).__name__}: {str(e).rstrip('.')}. "
                        "Check your network connection and log in with `hf auth login` (or pass --token).") from None
