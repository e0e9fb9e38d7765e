"""Deploying to a Hugging Face Space: exactly the files the app needs go up (large ones through LFS), the
dry run says so without the network, an unreachable Hub is a message, the README's front matter is a valid
Space configuration, and `on_gpu` wraps with `spaces.GPU` only where `spaces` exists. Never the network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from conftest import REPO
from test_architecture import import_graph

from demo import space, zerogpu

BIG = 11 * 1024 * 1024   # over the Hub's 10 MiB limit for a file outside LFS

# path -> size of a fake repository: what a Space needs, and what it must not get.
SHIPPED = {"app.py": 10, "requirements.txt": 10, "README.md": 10, "LICENSE": 10, "docs/api.md": 10,
           "bench/RESULTS.md": 10, "demo/__init__.py": 0,
           "demo/blocks.py": 10, "demo/examples/image/cat-1.png": 2000, "training/__init__.py": 0,
           "training/tasks/speech/audio.py": 10,
           "checkpoints/image/big/model.safetensors": BIG, "checkpoints/image/big/config.json": 0,
           "checkpoints/image/big/report.dat": 2 * 1024 * 1024,
           "checkpoints/speech/s/model.safetensors": 100, "checkpoints/speech/s/config.json": 0,
           "checkpoints/image/tests/model.safetensors": 100, "checkpoints/image/tests/config.json": 0,
           "checkpoints/text/broken/config.json": 5, "checkpoints/text/broken/model.safetensors": 100}
LEFT_BEHIND = ["checkpoints/image/big/resume.pt", "checkpoints/image/big/.lock", "checkpoints/image/big/x.tmp",
               "checkpoints/speech/s/train_noise.safetensors", "checkpoints/text/broken/resume.pt",
               "demo/__pycache__/blocks.cpython-311.pyc", "demo/blocks.pyc", "demo/blocks.pyi", "training/run.log",
               ".venv/lib/site.py", "demo/.venv/x.py", "training/.mypy_cache/x", "runs/r1/model.safetensors",
               "tests/test_x.py", "bench/serve.py", "recipes/image.sh", ".pytest_cache/v/x", ".ruff_cache/x",
               ".cache/x", "demo/.cache/x", "notes.txt", "Makefile", ".gitignore"]


@pytest.fixture(autouse=True)
def no_enclosing_git_repo(monkeypatch, tmp_path):
    """A fake repository under tmp_path is not a git checkout even if the temp folder sits inside one."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def fake_repo(root: Path) -> Path:
    for path in [*SHIPPED, *LEFT_BEHIND]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        with open(root / path, "wb") as f:
            f.truncate(SHIPPED.get(path, 3))   # sparse: an 11 MiB file costs nothing
    (root / "checkpoints/image/big/config.json").write_text(json.dumps({"task": "image"}))
    (root / "checkpoints/speech/s/config.json").write_text(json.dumps({"task": "speech"}))
    (root / "checkpoints/image/tests/config.json").write_text(json.dumps({"task": "image"}))
    (root / "checkpoints/text/broken/config.json").write_text("{not json")
    return root


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_a_folder_outside_git_ships_what_the_app_needs_and_nothing_else(tmp_path):
    files = space.space_files(fake_repo(tmp_path))
    assert [f.path for f in files] == sorted(SHIPPED)
    assert {f.path: f.size for f in files} == {p: (tmp_path / p).stat().st_size for p in SHIPPED}


def test_a_git_checkout_ships_only_tracked_files(tmp_path):
    root = fake_repo(tmp_path)
    git(root, "init", "-q")
    git(root, "add", "-f", *SHIPPED, "checkpoints/image/big/resume.pt", "tests/test_x.py")   # tracked by mistake
    (root / "demo/scratch.py").write_text("untracked junk")
    (root / "checkpoints/image/new").mkdir()
    (root / "checkpoints/image/new/model.safetensors").write_bytes(b"not added yet")
    assert [f.path for f in space.space_files(root)] == sorted(SHIPPED)
    git(root, "add", "checkpoints/image/new/model.safetensors")
    assert "checkpoints/image/new/model.safetensors" in [f.path for f in space.space_files(root)]


def test_large_and_model_files_go_through_lfs_and_get_gitattributes_rules(tmp_path):
    files = {f.path: f for f in space.space_files(fake_repo(tmp_path))}
    assert files["checkpoints/image/big/model.safetensors"].lfs      # over 10 MiB
    assert files["checkpoints/speech/s/model.safetensors"].lfs       # small, but a weights file
    assert files["checkpoints/image/big/report.dat"].lfs             # 2 MiB, no pattern covers it
    assert not files["demo/examples/image/cat-1.png"].lfs and not files["app.py"].lfs
    rules = space.gitattributes(list(files.values())).splitlines()
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in rules
    assert "*.pt filter=lfs diff=lfs merge=lfs -text" in rules
    assert "checkpoints/image/big/report.dat filter=lfs diff=lfs merge=lfs -text" in rules
    assert not any(r.startswith(("*.png", "checkpoints/image/big/model")) for r in rules)


def test_every_file_over_the_hub_limit_is_marked_lfs_in_the_real_list():
    files = space.space_files(REPO)
    big = [f for f in files if f.size > space.HUB_FILE_LIMIT]
    assert "checkpoints/image/cifar10/model.safetensors" in [f.path for f in big]
    assert all(f.lfs for f in big)


def test_the_real_list_has_the_app_every_checkpoint_and_no_development_files():
    paths = {f.path for f in space.space_files(REPO)}
    assert {"app.py", "requirements.txt", "README.md", "demo/blocks.py", "demo/predictor.py"} <= paths
    # Every shipped checkpoint: the committed ones (a run writing a new folder right now is not shipped yet).
    tracked = space.tracked_files(REPO) or [c.relative_to(REPO).as_posix() for c in REPO.glob("checkpoints/**/*")]
    folders = [p.rsplit("/", 1)[0] for p in tracked if re.fullmatch(r"checkpoints/[^/]+/[^/]+/config\.json", p)]
    assert len(folders) >= 4
    for folder in folders:
        assert {f"{folder}/model.safetensors", f"{folder}/config.json"} <= paths, folder
    assert "checkpoints/text/emotion/tokenizer.json" in paths
    assert any(p.startswith("demo/examples/") for p in paths)
    assert {"docs/training.md", "docs/limits.md", "bench/RESULTS.md"} <= paths      # the pages the README links
    banned = re.compile(r"(^|/)(\.venv|runs|tests|bench|recipes|__pycache__|\.pytest_cache|\.ruff_cache|\.cache)/"
                        r"|(^|/)resume\.pt$|\.pyc$")
    assert [p for p in paths if banned.search(p) and p != "bench/RESULTS.md"] == []


def test_the_real_list_holds_every_module_the_app_imports():
    """The Space must run: app.py's imports, followed through demo/ and training/, are all uploaded."""
    graph, paths = import_graph(), {f.path for f in space.space_files(REPO)}
    seen, todo = set(), ["app"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += sorted(graph[module])
    assert "demo.blocks" in seen and "training.tasks" in seen
    for module in seen:
        base = module.replace(".", "/")
        assert f"{base}.py" in paths or f"{base}/__init__.py" in paths, module


def no_hub(monkeypatch):
    import huggingface_hub

    class Refuse:
        def __init__(self, *a, **k):
            raise AssertionError("the dry run must not talk to the Hub")
    monkeypatch.setattr(huggingface_hub, "HfApi", Refuse)


def test_the_dry_run_lists_sizes_lfs_and_a_total_and_uploads_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(space, "REPO", fake_repo(tmp_path))
    no_hub(monkeypatch)
    space.main(["--repo-id", "you/triptych", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[-1]: line for line in lines[:-1]}
    assert sorted(rows) == sorted(SHIPPED)
    assert re.fullmatch(r"\s*11\.5 MB\s+LFS\s+checkpoints/image/big/model\.safetensors",
                        rows["checkpoints/image/big/model.safetensors"])
    assert re.fullmatch(r"\s*2\.0 kB\s+demo/examples/image/cat-1\.png", rows["demo/examples/image/cat-1.png"])
    total = sum((space.REPO / path).stat().st_size for path in SHIPPED)
    assert lines[-1].startswith(f"{len(SHIPPED)} files, {total / 1e6:.1f} MB in all; 5 through Git LFS")


def test_export_writes_exactly_the_space_and_refuses_a_full_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(space, "REPO", fake_repo(tmp_path / "repo"))
    no_hub(monkeypatch)
    space.main(["--export", str(tmp_path / "out")])
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
                     if p.is_file())
    assert written == sorted([*SHIPPED, ".gitattributes"])
    assert (tmp_path / "out/checkpoints/image/big/model.safetensors").stat().st_size == BIG
    with pytest.raises(SystemExit, match="not empty"):
        space.main(["--export", str(tmp_path / "out")])


class FakeApi:
    """Stands in for huggingface_hub.HfApi: records the calls, or fails the way it is told to."""
    calls: ClassVar[list] = []
    error: ClassVar[Exception | None] = None

    def __init__(self, token=None):
        self.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        if self.error is not None:
            raise self.error

    def create_commit(self, **kwargs):
        self.calls.append(("create_commit", kwargs))
        return types.SimpleNamespace(commit_url="https://huggingface.co/spaces/you/triptych/commit/1")


@pytest.fixture
def fake_api(monkeypatch, tmp_path):
    import huggingface_hub
    FakeApi.calls, FakeApi.error = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(space, "REPO", fake_repo(tmp_path))
    return FakeApi


def test_a_deploy_creates_a_gradio_space_and_commits_exactly_the_list(fake_api, capsys):
    space.main(["--repo-id", "you/triptych", "--private", "--token", "hf_x"])
    (_, token), (_, repo_id, kwargs), (_, commit) = fake_api.calls
    assert token == "hf_x" and repo_id == "you/triptych"
    assert kwargs == {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True}
    assert commit["repo_id"] == "you/triptych" and commit["repo_type"] == "space"
    ops = {op.path_in_repo: op for op in commit["operations"]}
    assert sorted(ops) == sorted([*SHIPPED, ".gitattributes"])
    assert b"*.safetensors filter=lfs" in ops[".gitattributes"].path_or_fileobj
    assert "commit/1" in capsys.readouterr().out


@pytest.mark.parametrize("error", [ConnectionError("Failed to establish a new connection"),
                                   TimeoutError("timed out"), "offline"])
def test_an_unreachable_hub_is_a_message_not_a_traceback(fake_api, capsys, error):
    from huggingface_hub.errors import OfflineModeIsEnabled
    fake_api.error = OfflineModeIsEnabled("offline mode is enabled") if error == "offline" else error
    with pytest.raises(SystemExit) as exit_info:
        space.main(["--repo-id", "you/triptych"])
    message = str(exit_info.value.code)
    assert message.startswith("error: could not reach the Hugging Face Hub to deploy the Space you/triptych")
    assert "--dry-run" in message and "Traceback" not in message
    assert not [c for c in fake_api.calls if c[0] == "create_commit"]


def test_a_missing_token_says_how_to_log_in(fake_api):
    from huggingface_hub.errors import LocalTokenNotFoundError
    fake_api.error = LocalTokenNotFoundError("Token is required")
    with pytest.raises(SystemExit, match=r"could not deploy to the Space you/triptych .*hf auth login"):
        space.main(["--repo-id", "you/triptych"])


def test_a_deploy_needs_a_repo_id(fake_api):
    with pytest.raises(SystemExit, match="--repo-id is needed"):
        space.main([])
    assert fake_api.calls == []


def front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_readme_front_matter_is_a_valid_space_configuration():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (REPO / meta["app_file"]).is_file()
    pinned = re.search(r"^gradio==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert meta["sdk_version"] == pinned
    assert 0 < len(meta["short_description"]) <= 60
    assert isinstance(meta["license"], str) and meta["license"]
    assert {"uoft-cs/cifar10", "dair-ai/emotion", "google/speech_commands"} <= set(meta["datasets"])
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+", d) for d in meta["datasets"])


def sample(text: str) -> str:
    return text.upper()


class Model:
    def predict(self, text: str) -> str:
        return text[::-1]


def stand_in_spaces(monkeypatch) -> list:
    """A `spaces` module whose GPU records what it wraps, as ZeroGPU's does, and marks the result."""
    wrapped = []

    def GPU(fn=None, *, duration=None):
        wrapped.append((fn, duration))

        def on_a_gpu(*args, **kwargs):
            return fn(*args, **kwargs)
        on_a_gpu.zerogpu = None
        return on_a_gpu
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    return wrapped


def test_on_gpu_wraps_with_spaces_gpu_where_spaces_is_installed(monkeypatch):
    wrapped = stand_in_spaces(monkeypatch)
    fast = zerogpu.on_gpu(sample)
    assert fast is not sample and hasattr(fast, "zerogpu") and fast("a") == "A"
    model = Model()
    method = zerogpu.on_gpu(duration=5)(model.predict)   # a bound method: the worker never pickles it
    assert method("ab") == "ba"
    assert wrapped == [(sample, None), (model.predict, 5)]


def test_on_gpu_returns_the_function_unchanged_without_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)   # `import spaces` now fails as when it is not installed
    assert zerogpu.gpu_decorator() is None
    assert zerogpu.on_gpu(sample) is sample
    assert zerogpu.on_gpu(duration=5)(sample) is sample

    @zerogpu.on_gpu
    def decorated(x):
        return x
    assert decorated.__name__ == "decorated" and not hasattr(decorated, "__wrapped__")


def test_a_broken_spaces_package_is_not_mistaken_for_its_absence(monkeypatch, tmp_path):
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces/__init__.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
        zerogpu.on_gpu(sample)


def test_the_demo_runs_every_model_through_spaces_gpu_on_zerogpu(monkeypatch):
    from demo.blocks import GPU_SECONDS, load_models
    from demo.predictor import Predictor

    wrapped = stand_in_spaces(monkeypatch)
    # No warm-up on ZeroGPU: the main process has no GPU, every use of the weights runs in a worker.
    monkeypatch.setattr(Predictor, "warm_up", lambda self: pytest.fail("warmed up in the main process"))
    models = load_models(REPO / "checkpoints", "cpu")
    predictor = models["text"].get("emotion")
    assert hasattr(predictor.predict, "zerogpu") and hasattr(predictor.explain, "zerogpu")
    assert max(predictor.predict("i feel wonderful today").items(), key=lambda kv: kv[1])[0] == "joy"
    count = sum(len(m.predictors) for m in models.values())
    assert len(wrapped) == 2 * count and {duration for _, duration in wrapped} == {GPU_SECONDS}


def test_elsewhere_the_demo_warms_each_model_up_and_wraps_nothing(monkeypatch):
    from demo.blocks import load_models
    from demo.predictor import Predictor

    monkeypatch.setitem(sys.modules, "spaces", None)
    warmed = []
    monkeypatch.setattr(Predictor, "warm_up", lambda self: warmed.append(self.name))
    models = load_models(REPO / "checkpoints", "cpu")
    assert sorted(warmed) == sorted(n for m in models.values() for n in m.predictors)
    assert not hasattr(models["text"].get("emotion").predict, "zerogpu")
