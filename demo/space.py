"""`python -m demo.space --repo-id you/triptych [--dry-run] [--export DIR]`: deploy the demo to a Hugging Face Space.

What goes up is what the Space runs, and nothing else: `app.py`, `requirements.txt`, `README.md` (its front
matter is the Space's configuration), a `LICENSE` if there is one, the `demo/` and `training/` packages the
app imports, and the checkpoints it serves. In a git checkout only tracked files are candidates, so untracked
junk never goes up; elsewhere the folder is walked. Either way virtual environments, caches, `runs/`,
`tests/`, `bench/`, `recipes/` and a checkpoint's training-only files (`resume.pt` and the rest of
`training.push.local_patterns`) stay behind.

Large and binary files go through Git LFS. The Hub's upload API decides that by itself, but a Space is also a
git repository that someone may clone and push to, where a file over 10 MiB outside LFS is refused. So the
Space gets a `.gitattributes` with the Hub's usual LFS rules (`*.safetensors`, `*.pt`, ...) plus one rule
for any other large file. This repository keeps no such `.gitattributes` of its own: with git-lfs installed,
a clone would show every committed `model.safetensors` as modified (git-lfs expects pointers, finds bytes).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from training.errors import TriptychError

REPO = Path(__file__).resolve().parents[1]
# Top-level files and folders a Space needs: what app.py imports, the checkpoints it serves, its config.
# The README is the Space's page: the docs/ pages and bench/RESULTS.md it links go with it.
SPACE_PATHS = ("app.py", "requirements.txt", "README.md", "LICENSE", "docs", "bench/RESULTS.md", "demo", "training",
               "checkpoints")
# Never shipped, wherever they are: environments and caches. (What only development needs, `tests/`, the rest
# of `bench/`, `recipes/`, `runs/`, is outside SPACE_PATHS; a checkpoint folder may have any name, so those are not here.)
IGNORED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".cache",
                ".gradio", ".hypothesis", "node_modules"}
IGNORED_FILES = ("*.pyc", "*.pyo", "*.pyi", "*.tmp", "*.log", ".DS_Store", "resume.pt")
# The Hub's own LFS rules for a new repository; a file they miss that is over LFS_SIZE gets a rule by path.
LFS_PATTERNS = ("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
                "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
                "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "*.tar.*", "*.tar", "*.tflite",
                "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*")
# The Hub refuses a git push with a file over 10 MiB outside LFS; binary files over 1 MiB are refused too, so
# anything over 1 MiB that no pattern covers goes through LFS (a large text file there does no harm).
HUB_FILE_LIMIT = 10 * 1024 * 1024
LFS_SIZE = 1024 * 1024
LFS_RULE = "filter=lfs diff=lfs merge=lfs -text"


class SpaceError(TriptychError):
    """A deploy that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class SpaceFile:
    path: str          # relative to the repository root, with forward slashes
    size: int          # bytes
    lfs: bool          # stored through Git LFS on the Space


def tracked_files(root: Path) -> list[str] | None:
    """The files git tracks under `root` (relative paths), or None outside a git checkout or without git."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def walked_files(root: Path) -> list[str]:
    """Every file under `root`'s shipped paths, not descending into ignored folders (no git to ask)."""
    found = []
    for top in SPACE_PATHS:
        path = root / top
        if path.is_file():
            found.append(top)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
                found += [(Path(folder) / name).relative_to(root).as_posix() for name in files]
    return found


def checkpoint_patterns(root: Path, folder: PurePosixPath, cache: dict) -> list[str]:
    """What a checkpoint folder keeps to itself (`training.push.local_patterns`); the common list when the
    folder has no readable config.json or names a task this code does not know."""
    if folder not in cache:
        from training.push import LOCAL_ONLY, local_patterns
        try:
            cache[folder] = local_patterns(json.loads((root / folder / "config.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            cache[folder] = list(LOCAL_ONLY)
    return cache[folder]


def is_shipped(path: str, root: Path, cache: dict) -> bool:
    parts = PurePosixPath(path).parts
    inside = any(path == top or path.startswith(top + "/") for top in SPACE_PATHS)
    if not inside or any(p in IGNORED_DIRS for p in parts[:-1]):
        return False
    name = parts[-1]
    if any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED_FILES):
        return False
    if parts[0] == "checkpoints" and len(parts) > 2:
        folder = PurePosixPath(path).parent
        return not any(fnmatch.fnmatch(name, p) for p in checkpoint_patterns(root, folder, cache))
    return True


def matches_lfs_pattern(path: str) -> bool:
    return any(fnmatch.fnmatch(PurePosixPath(path).name, pattern) for pattern in LFS_PATTERNS)


def space_files(root: Path = REPO) -> list[SpaceFile]:
    """Exactly the files a deploy uploads (besides the generated .gitattributes), sorted by path."""
    root = Path(root)
    candidates = tracked_files(root)
    candidates = walked_files(root) if candidates is None else candidates
    cache: dict = {}
    files = []
    for path in sorted(set(candidates)):
        full = root / path
        if full.is_file() and not full.is_symlink() and is_shipped(path, root, cache):
            size = full.stat().st_size
            files.append(SpaceFile(path, size, matches_lfs_pattern(path) or size > LFS_SIZE))
    return files


def gitattributes(files: list[SpaceFile]) -> str:
    """The Space's .gitattributes: the Hub's LFS rules, then one rule per large file they do not cover."""
    lines = ["# Git LFS rules for this Space, written by `python -m demo.space`."]
    lines += [f"{pattern} {LFS_RULE}" for pattern in LFS_PATTERNS]
    lines += [f"{f.path.replace(' ', '[[:space:]]')} {LFS_RULE}" for f in files
              if f.lfs and not matches_lfs_pattern(f.path)]
    return "\n".join(lines) + "\n"


def human_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def listing(files: list[SpaceFile]) -> str:
    """One line per file (size, LFS or not, path) and a total: what --dry-run prints."""
    rows = [f"{human_size(f.size):>9}  {'LFS' if f.lfs else '   '}  {f.path}" for f in files]
    lfs = [f for f in files if f.lfs]
    rows.append(f"{len(files)} files, {human_size(sum(f.size for f in files))} in all; {len(lfs)} through Git LFS "
                f"({human_size(sum(f.size for f in lfs))}), and a generated .gitattributes")
    return "\n".join(rows)


def export(root: Path, folder: Path, files: list[SpaceFile]) -> Path:
    """Copy the Space's files and its .gitattributes into `folder` (new or empty): a folder ready for
    `gradio deploy` or a `git push` to the Space."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise SpaceError(f"--export {folder}: the folder is not empty; give a new or empty folder.")
    for f in files:
        (folder / f.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root) / f.path, folder / f.path)
    (folder / ".gitattributes").write_text(gitattributes(files), encoding="utf-8")
    return folder


def unreachable(error: BaseException) -> bool:
    """Whether `error` means the Hub could not be reached at all (offline, DNS, refused, timed out)."""
    transport: tuple = ()
    for module in ("httpx2", "httpx"):   # huggingface_hub's HTTP client, whichever this release uses
        try:
            transport += (importlib.import_module(module).TransportError,)
        except (ImportError, AttributeError):
            pass
    return isinstance(error, (ConnectionError, TimeoutError, *transport))


def deploy(repo_id: str, *, root: Path = REPO, private: bool = False, token: str | None = None, api=None):
    """Create the Space `repo_id` if needed (Gradio SDK) and upload exactly `space_files(root)` and the
    .gitattributes in one commit; returns the Hub's commit info."""
    from huggingface_hub import CommitOperationAdd, HfApi

    files = space_files(root)
    operations = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(Path(root) / f.path)) for f in files]
    operations.append(CommitOperationAdd(path_in_repo=".gitattributes",
                                         path_or_fileobj=gitattributes(files).encode("utf-8")))
    api = api or HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        return api.create_commit(repo_id=repo_id, repo_type="space", operations=operations,
                                 commit_message=f"Deploy Triptych ({len(files)} files)")
    except Exception as e:  # noqa: BLE001  (offline, no token, no write access: a message, not a traceback)
        detail = f"{type(e).__name__}: {str(e).strip().rstrip('.')}"
        if unreachable(e):
            raise SpaceError(f"could not reach the Hugging Face Hub to deploy the Space {repo_id} ({detail}). "
                             "Check the network connection and that HF_HUB_OFFLINE is not set; "
                             "`--dry-run` lists what would go up without the network.") from None
        raise SpaceError(f"could not deploy to the Space {repo_id} ({detail}). "
                         "Log in with `hf auth login` (or set HF_TOKEN, or pass --token) with a token that "
                         "can write to that namespace.") from None


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo.space",
                                description="Deploy the Triptych demo to a Hugging Face Space (Gradio SDK).")
    p.add_argument("--repo-id", help="the Space, as user/name or org/name (needed unless --dry-run or --export)")
    p.add_argument("--private", action="store_true", help="create the Space private (an existing one keeps its "
                                                          "visibility)")
    p.add_argument("--token", default=None, help="a Hub token with write access (default: HF_TOKEN or the "
                                                 "token saved by `hf auth login`)")
    p.add_argument("--dry-run", action="store_true", help="list the files, their sizes and which go through "
                                                          "LFS; upload nothing")
    p.add_argument("--export", metavar="DIR", default=None, help="copy the Space's files and .gitattributes into "
                                                                 "DIR (for `gradio deploy` or git); upload nothing")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    root = REPO
    files = space_files(root)
    try:
        if args.dry_run or args.export:
            print(listing(files))
            if args.export:
                print(f"exported to {export(root, Path(args.export), files)}")
            return
        if not args.repo_id:
            raise SpaceError("--repo-id is needed to deploy (for example --repo-id you/triptych); "
                             "--dry-run lists the files without it.")
        info = deploy(args.repo_id, root=root, private=args.private, token=args.token)
    except SpaceError as e:
        sys.exit(f"error: {e}")
    print(f"deployed {len(files)} files to https://huggingface.co/spaces/{args.repo_id}")
    print(getattr(info, "commit_url", info))


if __name__ == "__main__":
    main()
