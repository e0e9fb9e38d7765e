"""`python -m training push --checkpoint DIR --repo-id ID`: upload a checkpoint folder to the Hugging Face Hub.

The folder already is a model repository (weights, config, task files, model card, report PNGs, and
model.onnx once exported); resume state and training-only files stay behind. A folder in an older format
gets its config.json in format 2 first (what timm's `hf-hub:` loader reads), and a card that does not name
the repository yet is written again first, so that its loading snippets do
(`timm.create_model("hf-hub:OWNER/NAME")`).
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


def local_patterns(config) -> list[str]:
    """File patterns of a checkpoint folder that stay on the machine that trained it: never pushed.
    `config`: its record, or config.json's content."""
    task = config.task if hasattr(config, "task") else config["task"]
    return [*LOCAL_ONLY, *get_task(task).local_files]


def push(folder, repo_id: str, *, private: bool = False, token: str | None = None, dataset_id: str | None = None,
         api=None):
    """Create `repo_id` if needed and upload `folder` in one commit; returns the Hub's commit info."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    ckpt.read_record(folder)                    # refuse to upload something the demo cannot load
    ckpt.read_weights(folder)
    config = ckpt.upgrade_folder(folder)        # what timm and the Hub read is format 2
    card = folder / CARD_NAME
    if dataset_id or not card.is_file() or repo_id not in card.read_text(encoding="utf-8"):
        write_model_card(folder, dataset_id, repo_id=repo_id)   # its snippets name the repository
    api = api or HfApi(token=token)
    acc = config.metrics.accuracy
    message = f"Upload {config.task} model {folder.name}" + (f" (validation accuracy {acc:.4f})" if acc else "")
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 ignore_patterns=local_patterns(config),
                                 commit_message=message)
    except Exception as e:   # offline, no token, no write access: say so instead of a traceback
        raise PushError(f"could not push {folder} to the Hub repository {repo_id}: {type(e).__name__}: {str(e).rstrip('.')}. "
                        "Check your network connection and log in with `hf auth login` (or pass --token).") from None
