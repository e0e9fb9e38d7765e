"""Text task: tokenizer, input checks, padding invariance, checkpoint round trip, CLI train and evaluate."""

from __future__ import annotations

import json

import pytest
import torch

from training import checkpoint as ckpt
from training.cli import main
from training.tasks import text

WORDS = {"joy": ["happy", "wonderful", "glad", "delighted"], "anger": ["angry", "furious", "annoyed", "mad"],
         "fear": ["scared", "afraid", "terrified", "nervous"]}


def sentences(n: int = 60) -> list[tuple[str, str]]:
    """`n` short sentences, each naming one label's words, cycling through the labels."""
    rows = []
    for i in range(n):
        label = list(WORDS)[i % len(WORDS)]
        words = WORDS[label]
        rows.append((f"i feel {words[i % 4]} and {words[(i + 1) % 4]} today number {i}", label))
    return rows


@pytest.fixture(scope="module")
def config() -> text.TextConfig:
    cfg = text.TextConfig(vocab_size=200, max_tokens=16, embedding_size=16, hidden_size=12)
    return text.TASK.fit(cfg, [s for s, _ in sentences()] + ["Ｆｕｌｌ width ÉCOLE café"] * 2)


# --------------------------------------------------------------------------------------------- tokenizer

def test_tokenizer_special_ids_and_round_trip(config, tmp_path):
    tok = config.tokenizer
    assert (tok.token_to_id(text.PAD), tok.token_to_id(text.UNK)) == (text.PAD_ID, text.UNK_ID)
    assert config.vocab_size == tok.get_vocab_size() <= 200
    ids, truncated = text.tokenize(config, "i feel happy today")
    assert not truncated and text.UNK_ID not in ids
    assert tok.decode(ids) == "i feel happy today"
    text.TASK.save_extra(config, tmp_path)
    again = text.TextConfig(**text.TASK.config_to_dict(config))
    text.TASK.load_extra(again, tmp_path)
    assert text.tokenize(again, "I feel HAPPY today") == (ids, False)


def test_normalisation_nfkc_lowercase_and_invisible_characters(config):
    plain = text.tokenize(config, "full width ecole")[0]
    assert text.tokenize(config, "ＦＵＬＬ WIDTH ecole")[0] == plain                     # NFKC + lowercase
    assert text.tokenize(config, "full\x00width\u200b ecole\u200f")[0] == plain         # NUL: space; format: dropped
    assert text.tokenize(config, "café")[0] != [text.UNK_ID]                            # accents kept


def test_blank_text_is_a_clear_error(config):
    for blank, words in (("", "empty"), (None, "empty"), ("  \n\t ", "only spaces"), ("\x00\x01\x7f", "only spaces")):
        with pytest.raises(text.InputError, match=words):
            text.tokenize(config, blank)
    with pytest.raises(text.InputError, match="Expected text"):
        text.prepare(config, 42)


def test_any_unicode_is_accepted(config):
    for s in ("😀🎉🔥", "مرحبا بالعالم", "שלום", "\ud800 lone surrogate \udfff", "!!!???", "a\u202eb", "中文字符"):
        ids, lengths = text.prepare(config, s)
        assert ids.dtype == torch.long and ids.shape == (1, int(lengths[0])) and lengths[0] >= 1


def test_random_strings_give_ids_or_a_clear_error(config):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.text(st.characters(exclude_categories=()), max_size=300))   # every code point, surrogates too
    def check(s):
        try:
            ids, _ = text.tokenize(config, s)
        except text.InputError as e:
            assert str(e).startswith("The text")
        else:
            assert 1 <= len(ids) <= config.max_tokens and all(0 < i < config.vocab_size for i in ids)

    check()


def test_long_text_is_cut_to_a_character_budget(config):
    long = "happy " * 20_000 + "x" * 50_000 + "😀" * 30_000                             # 200,000 characters
    ids, truncated = text.tokenize(config, long)                # (its time: bench/text_latency.py --long)
    assert truncated and len(ids) == config.max_tokens
    assert text.encode_text(config, long).encoding.offsets[-1][1] <= text.char_limit(config)   # only the budget read
    assert text.tokenize(config, "happy " * (config.max_tokens + 1))[1]
    assert not text.tokenize(config, "happy " * config.max_tokens)[1]
    assert text.tokenize(config, " " * 100_000 + "happy") == (text.tokenize(config, "happy")[0], False)


def test_encode_never_fails_on_dataset_rows(config):
    assert text.encode(config, "").tolist() == [text.UNK_ID]
    assert text.encode(config, None).tolist() == [text.UNK_ID]
    assert text.encode(config, "i feel happy").dtype == torch.int32


# ------------------------------------------------------------------------------------------------- model

@pytest.mark.parametrize("cell,pooling,bidirectional,layers", [
    ("gru", "max", True, 1), ("gru", "mean", False, 2), ("lstm", "attention", True, 2)])
def test_padding_does_not_change_logits(config, cell, pooling, bidirectional, layers):
    cfg = text.TextConfig(**{**text.TASK.config_to_dict(config), "cell": cell, "pooling": pooling,
                             "bidirectional": bidirectional, "layers": layers})
    torch.manual_seed(0)
    model = text.build_model(cfg, 3).eval()
    rows = [text.tokenize(config, s)[0] for s in ("i feel glad", "i feel furious and scared today number 7", "mad")]
    data, lengths = text.pad_batch(rows)
    data = torch.cat([data, torch.zeros(3, 5, dtype=torch.long)], 1)   # as the cache pads: past the batch's longest
    with torch.no_grad():
        batch = model(*text.make_batch(cfg, data, lengths, train=False))
        for i, r in enumerate(rows):
            alone = model(torch.tensor([r]), torch.tensor([len(r)]))
            assert torch.allclose(alone[0], batch[i], atol=1e-5), (i, alone, batch[i])


def test_make_batch_trims_to_the_longest_row_and_drops_tokens_only_in_training(config):
    data = torch.tensor([[5, 6, 7, 0, 0, 0], [5, 6, 0, 0, 0, 0]], dtype=torch.int32)
    lengths = torch.tensor([3, 2])
    ids, out_lengths = text.make_batch(config, data, lengths, train=False)
    assert ids.shape == (2, 3) and ids.dtype == torch.long and out_lengths.tolist() == [3, 2]
    cfg = text.TextConfig(**{**text.TASK.config_to_dict(config), "token_dropout": 0.9})
    ids, _ = text.make_batch(cfg, data, lengths, train=True, generator=torch.Generator().manual_seed(0))
    assert (ids[data[:, :3] == 0] == text.PAD_ID).all() and (ids == text.UNK_ID).any()


def test_checkpoint_round_trip_gives_same_logits(config, tmp_path):
    torch.manual_seed(0)
    model = text.build_model(config, 3).eval()
    ckpt.save_checkpoint(tmp_path, model, {"task": "text", "labels": ["anger", "fear", "joy"],
                                           "model": text.TASK.config_to_dict(config)})
    text.TASK.save_extra(config, tmp_path)
    json.dumps(text.TASK.config_to_dict(config))                                      # plain JSON, no tokenizer
    loaded, saved, task_config = ckpt.load_model(tmp_path)
    inputs = text.prepare(task_config, "i feel wonderful today")
    assert saved["labels"] == ["anger", "fear", "joy"]
    assert torch.allclose(model(*inputs), loaded(*inputs))
    (tmp_path / text.TOKENIZER_NAME).unlink()
    with pytest.raises(ckpt.CheckpointError, match="tokenizer.json: missing"):
        ckpt.load_model(tmp_path)


def test_explanation_covers_the_text_with_bounded_scores(config):
    torch.manual_seed(0)
    model = text.build_model(config, 3).eval()
    s = "  I feel  wonderful, today! 😀"
    pieces = text.explain(model, config, s)
    assert "".join(p for p, _ in pieces) == s
    scores = [v for _, v in pieces if v is not None]
    assert len(scores) == 7 and max(abs(v) for v in scores) == pytest.approx(1.0)
    assert [p for p, v in pieces if v is not None][:3] == ["I", "feel", "wonderful"]


# ---------------------------------------------------------------------------------------- CLI, evaluate

def write_csv(path, rows):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["content", "label"])
        w.writerows(rows)
    return path


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sentence": [s for s, _ in rows], "labels": [l for _, l in rows]}), path)
    return path


TINY = ["--from-scratch", "--epochs", "1", "--batch-size", "8", "--vocab-size", "100", "--embedding-size", "8", "--hidden-size", "8",
        "--val-fraction", "0.2", "--workers", "0", "--threads", "1", "--quiet"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_trains_on_generated_data(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    data = (write_csv if fmt == "csv" else write_parquet)(tmp_path / f"tiny.{fmt}", sentences(60))
    out = tmp_path / "out"
    summary = main(["text", "--dataset", str(data), "--output", str(out), *TINY])
    assert summary["best"]["epoch"] == 1 and 0 <= summary["best"]["accuracy"] <= 1
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json", "resume.pt"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "text" and config["labels"] == ["anger", "fear", "joy"]
    assert config["model"]["hidden_size"] == 8 and config["model"]["vocab_size"] <= 100
    assert config["preprocessing"]["pad_id"] == 0 and "tokenizer_sha256" in config["preprocessing"]
    assert config["dataset"]["num_validation"] == 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best"]["accuracy"] == config["metrics"]["accuracy"]
    model, _, task_config = ckpt.load_model(out)
    assert model(*text.prepare(task_config, "i feel happy")).shape == (1, 3)


def test_evaluate_scores_a_generated_split(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRIPTYCH_CACHE", str(tmp_path / "cache"))
    rows = sentences(60)
    train = write_csv(tmp_path / "train.csv", rows)
    main(["text", "--dataset", str(train), "--output", str(tmp_path / "out"), *TINY])
    other = write_csv(tmp_path / "other.csv", [(s.upper(), l) for s, l in rows[:21]])
    report = main(["evaluate", "--checkpoint", str(tmp_path / "out"), "--dataset", str(other), "--split", "train",
                   "--workers", "0"])
    assert report["num_examples"] == 21 and 0 <= report["accuracy"] <= 1
    assert set(report["per_label"]) == {"anger", "fear", "joy"}
    assert json.loads(capsys.readouterr().out)["accuracy"] == report["accuracy"]
