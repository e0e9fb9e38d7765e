"""The speech task: decoding of every format and width, resampling and padding invariants, features, the
model and its checkpoint, the Speech Commands adapter, and the training CLI on generated data."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest
import soundfile as sf
import torch

from training import checkpoint as ckpt
from training.tasks import speech
from training.tasks.speech import TASK, InputError, SpeechConfig, load_audio

SR = speech.SAMPLE_RATE


def tone(seconds=1.0, rate=SR, freq=440.0, amp=0.5, channels=1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def encoded(x, rate=SR, fmt="WAV", subtype=None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def peak_hz(x: torch.Tensor, rate=SR) -> float:
    spectrum = np.abs(np.fft.rfft(x.numpy()))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


# ------------------------------------------------------------------------------------------ decoding

@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_widths_decode_to_float_in_range(subtype):
    clip = load_audio(encoded(tone(), subtype=subtype), SR, 1.0)
    x = clip.waveform
    assert x.dtype == torch.float32 and x.shape == (SR,)
    assert np.isclose(float(x.abs().max()), 0.5, atol=0.02)     # full scale is 1.0 for every width
    assert abs(peak_hz(x) - 440) <= 1
    assert clip.notes == ()


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"),
                                         ("MP3", "MPEG_LAYER_III")])
def test_compressed_formats_decode(fmt, subtype):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    x = load_audio(encoded(tone(), fmt=fmt, subtype=subtype), SR, 1.0).waveform
    assert x.shape == (SR,)
    assert abs(peak_hz(x) - 440) <= 2


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_averaged_to_mono(channels):
    x = tone(channels=channels)
    x[:, 0] = 0.0   # mean of one silent and n-1 equal channels
    out = load_audio(encoded(x), SR, 1.0).waveform
    assert out.shape == (SR,)
    assert np.isclose(float(out.abs().max()), 0.5 * (channels - 1) / channels, atol=0.01)


@pytest.mark.parametrize("rate", [8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000])
def test_any_rate_is_resampled_keeping_pitch(rate):
    out = load_audio(encoded(tone(rate=rate), rate=rate), SR, 1.0).waveform
    assert out.shape == (SR,)
    assert abs(peak_hz(out) - 440) <= 2


def test_resampling_to_8k_model_rate():
    out = load_audio(encoded(tone(rate=44_100, freq=1000), rate=44_100), 8_000, 1.0).waveform
    assert out.shape == (8_000,) and abs(peak_hz(out, 8_000) - 1000) <= 2


def test_odd_rate_does_not_build_a_huge_filter():
    out = load_audio(encoded(tone(rate=44_101), rate=44_101), SR, 1.0).waveform
    assert out.shape == (SR,) and abs(peak_hz(out) - 440) <= 3


def test_short_clip_is_centred_in_silence():
    out = load_audio(encoded(tone(0.5)), SR, 1.0).waveform
    nonzero = torch.nonzero(out.abs() > 1e-3).squeeze(1)
    assert out.shape == (SR,)
    assert abs(int(nonzero[0]) - SR // 4) <= 2 and abs(int(nonzero[-1]) - 3 * SR // 4) <= 20


def test_long_clip_is_heard_through_its_loudest_window():
    x = np.zeros(5 * SR, dtype=np.float32)
    x[3 * SR:int(3.5 * SR)] = tone(0.5)
    clip = load_audio(encoded(x), SR, 1.0)
    assert clip.waveform.shape == (SR,)
    assert 2.4 <= clip.start <= 3.0 and clip.duration == pytest.approx(5.0)
    assert float(clip.waveform.abs().max()) > 0.4
    assert any("loudest" in n for n in clip.notes)


def test_ten_minute_clip_reads_a_bounded_prefix(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.05, 600 * 8_000).astype(np.float32), 8_000,
             subtype="PCM_16")
    clip = load_audio(str(path), SR, 1.0)
    assert clip.waveform.shape == (SR,) and clip.duration == pytest.approx(600.0)
    assert clip.start < speech.MAX_READ_SECONDS
    assert any("600.0 s" in n and f"first {speech.MAX_READ_SECONDS:g} s" in n for n in clip.notes)


def test_gradio_numpy_tuples():
    ints = (tone() * 32767).astype(np.int16)
    a = load_audio((SR, ints), SR, 1.0).waveform
    b = load_audio((SR, tone()), SR, 1.0).waveform
    assert torch.allclose(a, b, atol=1e-4)
    channels_first = np.stack([tone(), tone()])                     # (2, samples), torchaudio's layout
    assert torch.allclose(load_audio((SR, channels_first), SR, 1.0).waveform, b)
    u8 = (tone() * 127 + 128).astype(np.uint8)
    assert torch.allclose(load_audio((SR, u8), SR, 1.0).waveform, b, atol=0.02)   # 8-bit steps are 1/128


def test_dataset_dict_and_path_sources(tmp_path):
    data = encoded(tone())
    (tmp_path / "a.wav").write_bytes(data)
    from_dict = load_audio({"bytes": data, "path": "x/a.wav"}, SR, 1.0).waveform
    from_path = load_audio(tmp_path / "a.wav", SR, 1.0).waveform
    assert torch.equal(from_dict, from_path)


def test_nan_and_inf_samples_are_zeroed_with_a_note():
    x = tone()
    x[100:200] = np.nan
    x[300] = np.inf
    clip = load_audio(encoded(x, subtype="FLOAT"), SR, 1.0)
    assert torch.isfinite(clip.waveform).all()
    assert any("NaN or infinite" in n for n in clip.notes)
    with pytest.raises(InputError, match="no valid samples"):
        load_audio(encoded(np.full(SR, np.nan, np.float32), subtype="FLOAT"), SR, 1.0)


def test_loud_float_is_scaled_not_clipped():
    clip = load_audio(encoded(tone(amp=4.0), subtype="FLOAT"), SR, 1.0)
    assert float(clip.waveform.abs().max()) == pytest.approx(1.0, abs=1e-3)
    assert any("scaled down" in n for n in clip.notes)


def test_silence_is_a_prediction_input_with_a_note():
    clip = load_audio(encoded(np.zeros(SR, np.float32)), SR, 1.0)
    assert clip.waveform.abs().max() == 0 and any("silent" in n for n in clip.notes)
    features = speech.listen(SpeechConfig(), encoded(np.zeros(SR, np.float32))).features
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (b"this is a text file, not audio" * 10, "not audio"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "not audio"),
])
def test_bad_bytes_give_clear_errors(data, message):
    with pytest.raises(InputError, match=message):
        load_audio(data, SR, 1.0)


@pytest.mark.parametrize("samples", [0, 1, 100])
def test_too_few_samples(samples):
    with pytest.raises(InputError, match="empty|samples"):
        load_audio(encoded(np.zeros(samples, np.float32) + 0.1), SR, 1.0)


def test_missing_file_and_nothing():
    with pytest.raises(InputError, match="missing"):
        load_audio("/no/such/file.wav", SR, 1.0)
    with pytest.raises(InputError, match="No audio"):
        load_audio(None, SR, 1.0)


def test_truncated_wav_decodes_what_is_there():
    data = encoded(tone(), subtype="PCM_16")[: 44 + 2 * SR // 2]    # header says 1 s, file holds 0.5 s
    clip = load_audio(data, SR, 1.0)
    assert clip.waveform.shape == (SR,) and float(clip.waveform.abs().max()) > 0.4


def test_absurd_sample_rate_in_header():
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(1)
        w.writeframes(bytes(2000))
    with pytest.raises(InputError, match="sample rate"):
        load_audio(buf.getvalue(), SR, 1.0)


def test_forged_header_cannot_make_the_decoder_allocate_gigabytes():
    import struct
    import tracemalloc

    channels, rate = 64, 384_000   # and a data chunk that claims 2 GB
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    data = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    data += b"data" + struct.pack("<I", 0x7FFFFFF0) + bytes(256_000)
    tracemalloc.start()
    try:
        load_audio(data, SR, 1.0)
    except InputError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB"


# ------------------------------------------------------------------------------------------ features

def test_features_shape_and_normalisation():
    config = SpeechConfig()
    x = torch.stack([load_audio(encoded(tone(freq=f)), SR, 1.0).waveform for f in (300, 900)])
    (features,) = speech.make_batch(config, x.half(), None, train=False)
    assert features.shape == (2, config.n_mels, SR // 160 + 1)
    assert torch.allclose(features.mean(dim=(1, 2)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(features.std(dim=(1, 2)), torch.ones(2), atol=1e-3)


def test_features_ignore_gain():
    config = SpeechConfig()
    x = load_audio(encoded(tone()), SR, 1.0).waveform
    a, = speech.make_batch(config, x[None], None, train=False)
    b, = speech.make_batch(config, 0.1 * x[None], None, train=False)
    assert torch.allclose(a, b, atol=1e-3)


def test_features_at_8k():
    config = SpeechConfig(sample_rate=8_000)
    (f,) = speech.make_batch(config, torch.zeros(3, 8_000), None, train=False)
    assert f.shape == (3, config.n_mels, 101) and torch.isfinite(f).all()


@pytest.mark.parametrize("rate, win, hop", [(16_000, 400, 160), (8_000, 200, 80)])
def test_mel_power_is_torchaudios(rate, win, hop):
    """The hand-taken power spectrum (re^2 + im^2) equals torchaudio's MelSpectrogram within float rounding."""
    import torchaudio

    x = torch.randn(3, rate, generator=torch.Generator().manual_seed(0))
    reference = torchaudio.transforms.MelSpectrogram(sample_rate=rate, n_fft=512 if win > 256 else 256, win_length=win,
                                                     hop_length=hop, f_min=20.0, f_max=rate / 2, n_mels=40,
                                                     power=2.0, mel_scale="htk")(x)
    mel = speech.mel_transform(rate, win, hop, 40, 20.0, rate / 2, "cpu")(x)
    assert mel.shape == reference.shape
    assert torch.allclose(mel, reference, rtol=1e-6, atol=1e-9)


def test_train_batch_is_augmented_and_reproducible():
    config = SpeechConfig()
    x = torch.stack([load_audio(encoded(tone(freq=f)), SR, 1.0).waveform for f in (300, 600, 900, 1200)]).half()
    torch.manual_seed(0)
    a, = speech.make_batch(config, x, None, train=True, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    b, = speech.make_batch(config, x, None, train=True, generator=torch.Generator().manual_seed(1))
    clean, = speech.make_batch(config, x, None, train=False)
    assert a.shape == clean.shape and torch.equal(a, b) and not torch.allclose(a, clean)


def test_noise_bank_from_silence_folders():
    noise = encoded(np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32))
    inputs = [{"bytes": noise, "path": "_silence_/n1.wav"}, {"bytes": encoded(tone()), "path": "yes/a.wav"}]
    config = TASK.fit(SpeechConfig(), inputs)
    assert config.noise.shape == (1, SR)
    assert TASK.fit(SpeechConfig(), inputs[1:]).noise is None
    x = torch.zeros(2, SR)
    x[:, 4000:8000] = 0.5
    mixed = speech.add_noise(SpeechConfig(noise_prob=1.0), x, torch.Generator().manual_seed(0))
    assert mixed.shape == x.shape and not torch.equal(mixed, x)


def test_time_stretch_can_differ_from_frequency_stretch():
    from training.tasks.speech import stretch

    along_time = torch.linspace(-1, 1, 50).repeat(4, 40, 1)            # varies over frames only
    along_freq = torch.linspace(-1, 1, 40)[:, None].repeat(4, 1, 50)   # varies over mel bins only
    g = lambda: torch.Generator().manual_seed(0)                        # noqa: E731
    # Time only: bins are left alone, frames move.
    assert torch.allclose(stretch(along_freq, 0.0, g(), time_amount=0.3), along_freq, atol=1e-5)
    assert not torch.allclose(stretch(along_time, 0.0, g(), time_amount=0.3), along_time, atol=1e-3)
    # Frequency only: the reverse.
    assert torch.allclose(stretch(along_time, 0.2, g(), time_amount=0.0), along_time, atol=1e-5)
    assert not torch.allclose(stretch(along_freq, 0.2, g(), time_amount=0.0), along_freq, atol=1e-3)
    # Unset, the time stretch is the frequency one, draw for draw.
    assert torch.equal(stretch(along_time, 0.1, g()), stretch(along_time, 0.1, g(), time_amount=0.1))


def test_time_shift_keeps_length():
    x = torch.arange(1, 101, dtype=torch.float32).repeat(3, 1)
    y = speech.time_shift(x, 10, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and (y == 0).sum(1).max() <= 10


# --------------------------------------------------------------------------------------------- model

@pytest.mark.parametrize("cell", speech.CELLS)
def test_model_shapes(cell):
    config = SpeechConfig(cell=cell)
    model = speech.build_model(config, 12).eval()
    (features,) = speech.prepare(config, encoded(tone()))
    assert features.shape == (1, config.n_mels, 101)
    assert model(features).shape == (1, 12)
    assert config.architecture == f"conv-bi{cell}"


def test_checkpoint_round_trip_same_logits(tmp_path):
    config = SpeechConfig(sample_rate=8_000, hidden_size=32)
    torch.manual_seed(0)
    model = speech.build_model(config, 3).eval()
    labels = ["a", "b", "c"]
    ckpt.save_checkpoint(tmp_path, model, {"task": "speech", "labels": labels, "model": TASK.config_to_dict(config),
                                           "preprocessing": TASK.preprocessing(config)})
    loaded, saved, task_config = ckpt.load_model(tmp_path)
    assert saved["labels"] == labels and task_config == config
    inputs = speech.prepare(task_config, encoded(tone()))
    with torch.no_grad():
        assert torch.allclose(model(*inputs), loaded(*inputs))
    json.dumps(saved)   # plain data only


def test_config_from_dict_rejects_unknown_keys():
    d = TASK.config_to_dict(SpeechConfig())
    assert TASK.config_from_dict(d) == SpeechConfig()
    with pytest.raises(ValueError, match="unknown"):
        TASK.config_from_dict({**d, "bogus": 1})


# ------------------------------------------------------------------------------- Speech Commands adapter

HUB_WORDS = ["backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
             "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
             "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero", "_silence_"]


def hub_like_split(words, noise_seconds=5):
    """Rows shaped like the Hub's google/speech_commands v0.02 parquet conversion."""
    import datasets

    rows = {"file": [], "audio": [], "label": [], "is_unknown": [], "speaker_id": [], "utterance_id": []}
    for i, word in enumerate(words):
        seconds = noise_seconds if word == "_silence_" else 1
        path = f"{'_background_noise_' if word == '_silence_' else word}/{i:04d}.wav"
        rows["file"].append(path)
        rows["audio"].append({"bytes": encoded(tone(seconds, freq=200 + 10 * i)), "path": path})
        rows["label"].append(HUB_WORDS.index(word))
        rows["is_unknown"].append(word not in speech.KEYWORD_LABELS)
        rows["speaker_id"].append(None if word == "_silence_" else f"s{i % 5}")
        rows["utterance_id"].append(0)
    features = datasets.Features({"file": datasets.Value("string"), "audio": datasets.Audio(decode=False),
                                  "label": datasets.ClassLabel(names=HUB_WORDS), "is_unknown": datasets.Value("bool"),
                                  "speaker_id": datasets.Value("string"), "utterance_id": datasets.Value("int8")})
    return datasets.Dataset.from_dict(rows, features=features)


def test_adapter_maps_hub_words_to_twelve_keywords():
    import datasets

    words = ["yes", "no", "yes", "no"] + ["bed", "bird", "cat", "dog", "happy", "tree"] + ["_silence_"]
    raw = datasets.DatasetDict({"train": hub_like_split(words)})
    out = speech.adapt_dataset(raw, SpeechConfig(), 0)
    ds = out["train"]
    names = ds.features["label"].names
    assert names == list(speech.KEYWORD_LABELS)
    counts = {n: sum(1 for y in ds["label"] if names[y] == n) for n in names}
    assert counts["yes"] == 2 and counts["no"] == 2
    assert counts["_unknown_"] == 2            # capped at the largest command's count
    assert counts["_silence_"] == 5            # one 5-s recording cut into 1-s pieces
    pieces = [r for r in ds if names[r["label"]] == "_silence_"]
    assert len({r["speaker_id"] for r in pieces}) == 1    # pieces of one recording stay one group
    assert all(sf.info(io.BytesIO(r["audio"]["bytes"])).duration == pytest.approx(1.0) for r in pieces)
    kept = speech.adapt_dataset(raw, SpeechConfig(keep_all_words=True), 0)
    assert kept["train"].features["label"].names == HUB_WORDS


def test_adapter_leaves_twelve_class_data_alone():
    import datasets

    ds = datasets.Dataset.from_dict({"label": [0, 1]}, features=datasets.Features(
        {"label": datasets.ClassLabel(names=list(speech.KEYWORD_LABELS))}))
    raw = datasets.DatasetDict({"train": ds})
    assert speech.adapt_dataset(raw, SpeechConfig(), 0) is raw


def test_hub_speech_commands_reads_the_parquet_conversion(monkeypatch):
    import datasets
    from training import data

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or "loaded")
    assert data.load_raw("google/speech_commands", name="v0.02") == "loaded"
    assert data.load_raw("google/speech_commands") == "loaded"
    assert calls[0] == (("google/speech_commands",), {"data_dir": "v0.02", "revision": "refs/convert/parquet"})
    assert calls[1] == calls[0]


# ------------------------------------------------------------------------------------- training CLI

WORDS = ("yes", "no")


def word_clip(label: int, i: int, rate: int = 8_000) -> np.ndarray:
    """A stand-in for a spoken word: a tone burst whose pitch depends on the label, at a varying place."""
    x = np.random.default_rng(i).normal(0, 0.01, int(0.8 * rate)).astype(np.float32)
    start = (i * 97) % (rate // 4)
    x[start:start + rate // 3] += tone(1 / 3, rate, freq=300 if label == 0 else 1200)
    return x


def make_audiofolder(root, per_label=20):
    for k, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / word / f"{i:03d}.wav", word_clip(k, i), 8_000, subtype="PCM_16")
    return root


def make_audio_parquet(root, per_label=20, *, words=WORDS, speakers=("spk0", "spk1", "spk2", "spk3", "spk4"),
                       column="audio", names=None, skip=()):
    """A tiny Hub-layout speech dataset: `per_label` tone clips of each word in `words` (whose ClassLabel
    names are `names`, default `words`), spoken in turn by `speakers`; words in `skip` get no rows."""
    import datasets

    names = list(names or words)
    rows = [(word_clip(k, i), names.index(w), speakers[i % len(speakers)])
            for i in range(per_label) for k, w in enumerate(words) if w not in skip]
    features = datasets.Features({column: datasets.Audio(decode=False), "speaker_id": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names)})
    ds = datasets.Dataset.from_dict({column: [{"bytes": encoded(x, 8_000, "FLAC"), "path": f"{i}.flac"}
                                              for i, (x, _, _) in enumerate(rows)],
                                     "label": [y for _, y, _ in rows], "speaker_id": [s for _, _, s in rows]},
                                    features=features)
    (root / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


TINY = ["--from-scratch", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--threads", "1", "--quiet", "--channels", "8",
        "--hidden-size", "16", "--sample-rate", "8000"]


def check_run(out, summary, labels):
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "model.safetensors").is_file() and (out / "confusion_matrix.png").is_file()
    assert config["task"] == "speech" and config["labels"] == list(labels)
    assert config["architecture"] == "conv-bigru"
    assert config["preprocessing"]["sample_rate"] == 8000 and config["model"]["sample_rate"] == 8000
    assert 0.0 <= config["metrics"]["accuracy"] <= 1.0 and "macro_f1" in config["metrics"]
    assert metrics["best"]["accuracy"] == summary["best"]["accuracy"] and len(metrics["history"]) == 1
    model, _, task_config = ckpt.load_model(out)
    assert model(*speech.prepare(task_config, encoded(word_clip(0, 1), 8_000))).shape == (1, len(labels))


def test_cli_trains_on_an_audiofolder(tmp_path):
    from training.cli import main

    data, out = make_audiofolder(tmp_path / "words"), tmp_path / "run"
    summary = main(["speech", "--dataset", str(data), "--output", str(out), *TINY])
    check_run(out, summary, sorted(WORDS))   # audiofolder names labels by sorted folder name
    assert json.loads((out / "config.json").read_text())["dataset"]["num_validation"] == 4   # 10%, stratified


def test_cli_trains_on_parquet_held_out_by_speaker_then_evaluates(tmp_path):
    from training.cli import main

    data, out = make_audio_parquet(tmp_path / "words"), tmp_path / "run"
    summary = main(["speech", "--dataset", str(data), "--output", str(out), "--group-column", "speaker_id",
                    "--val-fraction", "0.2", "--cell", "lstm", *TINY])
    config = json.loads((out / "config.json").read_text())
    assert "by speaker_id" in config["dataset"]["validation_split"] and config["dataset"]["num_validation"] == 8
    assert config["model"]["cell"] == "lstm"
    config["architecture"] = "conv-bigru"   # check_run's fixed expectation
    (out / "config.json").write_text(json.dumps(config))
    check_run(out, summary, WORDS)
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(data), "--split", "train",
                   "--workers", "0", "--report-dir", str(tmp_path / "eval")])
    assert report["num_examples"] == 40 and 0.0 <= report["accuracy"] <= 1.0
    assert (tmp_path / "eval" / "metrics.json").is_file()


# ------------------------------------------------------------------------------------------ fuzzing

def test_random_bytes_only_ever_raise_audio_input_error():
    from hypothesis import given, settings, strategies as st

    headers = st.sampled_from([b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS", b"ID3", b"\xff\xfb",
                               encoded(tone(0.1))[:44], encoded(tone(0.1), fmt="FLAC")[:200]])

    @settings(max_examples=150, deadline=None, database=None)
    @given(headers, st.binary(max_size=2000))
    def decode(header, body):
        try:
            clip = load_audio(header + body, SR, 1.0)
        except InputError:
            return
        assert clip.waveform.shape == (SR,) and torch.isfinite(clip.waveform).all()

    decode()


def test_cli_maps_a_hub_layout_copy_to_the_keyword_labels(tmp_path):
    from training.cli import main

    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"] * 2 + ["cat", "bed"] * 4
    (tmp_path / "sc" / "data").mkdir(parents=True)
    hub_like_split(words + ["_silence_"]).to_parquet(str(tmp_path / "sc" / "data" / "train-00000-of-00001.parquet"))
    out = tmp_path / "run"
    main(["speech", "--dataset", str(tmp_path / "sc"), "--output", str(out), "--group-column", "speaker_id",
          "--val-fraction", "0.2", *TINY[:-2]])
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == list(speech.KEYWORD_LABELS)
    assert config["dataset"]["num_train"] + config["dataset"]["num_validation"] == 20 + 2 + 5   # unknown capped


@pytest.mark.parametrize("recorded_in", ["model", "train_args only"])
def test_evaluate_reads_the_data_as_the_checkpoint_was_trained(tmp_path, recorded_in):
    """A model trained with --keep-all-words knows every Hub word; `evaluate` must score it on every word
    too (the adapter runs with the checkpoint's recorded settings), not remap the data to 12 keywords that
    do not match its labels. Checkpoints written before the setting was part of the model's settings
    recorded it in train_args only."""
    from training.cli import main

    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"] * 2 + ["cat", "bed"] * 4
    (tmp_path / "sc" / "data").mkdir(parents=True)
    hub_like_split(words + ["_silence_"]).to_parquet(str(tmp_path / "sc" / "data" / "train-00000-of-00001.parquet"))
    out = tmp_path / "run"
    main(["speech", "--dataset", str(tmp_path / "sc"), "--output", str(out), "--group-column", "speaker_id",
          "--val-fraction", "0.2", "--keep-all-words", *TINY[:-2]])
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == HUB_WORDS and config["model"]["keep_all_words"] is True
    if recorded_in == "train_args only":
        del config["model"]["keep_all_words"]
        (out / "config.json").write_text(json.dumps(config))
    report = main(["evaluate", "--checkpoint", str(out), "--dataset", str(tmp_path / "sc"), "--split", "train",
                   "--workers", "0"])
    assert report["num_examples"] == len(words) + 1          # every row, the silence recording uncut
    assert set(report["per_label"]) == set(HUB_WORDS)
