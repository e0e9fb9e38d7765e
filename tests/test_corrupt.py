"""`evaluate --corrupt`: reverb, noise and telephone copies of a speech split, each measurable and seeded."""

from __future__ import annotations

import math

import pytest
import torch

from training.errors import SettingsError
from training.tasks import get_task
from training.tasks.speech.corrupt import CORRUPTIONS, NOISE_SNR_DB, corrupt, rms

SR = 16000


def tone(hz: float, seconds: float = 1.0, rate: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return (0.3 * torch.sin(2 * math.pi * hz * t))[None].to(torch.float16)


def band_energy(x: torch.Tensor, lo: float, hi: float, rate: int = SR) -> float:
    spectrum = torch.fft.rfft(x.float()[0]).abs().pow(2)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_a_corruption_keeps_shape_dtype_and_loudness_and_is_seeded(name):
    x = torch.cat([tone(440), tone(880)])
    y = corrupt(x, SR, name)
    assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
    assert torch.allclose(rms(y.float()), rms(x.float()), rtol=0.1)
    assert torch.equal(corrupt(x, SR, name, seed=0), y) and (name == "telephone" or not torch.equal(corrupt(x, SR, name, seed=1), y))


def test_noise_is_added_at_the_stated_signal_to_noise_ratio():
    x = tone(440)
    noise = corrupt(x, SR, "noise").float() - x.float()
    snr = 20 * math.log10(float(rms(x.float())) / float(rms(noise)))
    assert abs(snr - NOISE_SNR_DB) < 0.5


def test_telephone_keeps_300_to_3400_hz_only():
    for hz in (100, 6000):
        x = (tone(1000).float() + tone(hz).float()).to(torch.float16)       # a kept tone beside one that goes
        y = corrupt(x, SR, "telephone")
        before = band_energy(x, hz - 20, hz + 20) / band_energy(x, 980, 1020)
        after = band_energy(y, hz - 20, hz + 20) / band_energy(y, 980, 1020)
        assert after < 0.05 * before, (hz, after / before)


def test_reverb_spreads_a_click_over_the_room():
    x = torch.zeros(1, SR, dtype=torch.float16)
    x[0, 100] = 0.9
    y = corrupt(x, SR, "reverb").float()[0]
    assert float(y[100 + SR // 10:].abs().sum()) > 0.05 * float(y.abs().sum())     # a tail after 100 ms


def test_unknown_corruptions_and_tasks_without_any_are_refused():
    with pytest.raises(SettingsError, match="reverb, noise, telephone"):
        get_task("speech").corrupt(get_task("speech").Config(), tone(440), "underwater")
    with pytest.raises(SettingsError, match="the image task has no such corruption; it has none"):
        get_task("image").corrupt(None, torch.zeros(1, 3, 8, 8), "reverb")


def test_evaluate_scores_a_corrupted_copy_and_says_which(tmp_path):
    from test_speech import TINY, make_audio_parquet
    from training.cli import main

    data, out = make_audio_parquet(tmp_path / "words"), tmp_path / "run"
    main(["speech", "--dataset", str(data), "--output", str(out), "--group-column", "speaker_id",
          "--val-fraction", "0.2", *TINY])
    args = ["evaluate", "--checkpoint", str(out), "--dataset", str(data), "--split", "train", "--workers", "0"]
    clean = main(args)
    noisy = main([*args, "--corrupt", "noise"])
    assert clean["corruption"] is None and noisy["corruption"] == "noise"
    assert noisy["num_examples"] == clean["num_examples"] and noisy["loss"] != clean["loss"]
    with pytest.raises(SystemExit, match="the speech task's corruptions are reverb, noise, telephone"):
        main([*args, "--corrupt", "underwater"])


# ------------------------------------------------------------------------------- training augmentation

def batch_of(config, seed: int = 0):
    from training.tasks.speech.preprocess import make_batch

    x = torch.cat([tone(300), tone(700), tone(1500), tone(2500)] * 4)
    torch.manual_seed(seed)          # SpecAugment's masks come from torch's global generator
    return make_batch(config, x, None, train=True, generator=torch.Generator().manual_seed(seed))[0]


def test_rooms_and_channels_augment_training_batches_reproducibly():
    from dataclasses import replace

    speech = get_task("speech")
    plain = replace(speech.Config(), noise_prob=0.0)
    rooms = replace(plain, reverb_prob=1.0, band_prob=0.5, gain_db=6.0, clip_prob=0.5)
    assert torch.equal(batch_of(plain), batch_of(replace(plain)))                  # off by default: as before
    assert not torch.allclose(batch_of(rooms), batch_of(plain))
    assert torch.equal(batch_of(rooms, seed=3), batch_of(rooms, seed=3))           # the epoch's generator decides
    assert not torch.equal(batch_of(rooms, seed=3), batch_of(rooms, seed=4))
    assert torch.isfinite(batch_of(rooms)).all()


def test_each_augmentation_does_what_it_says():
    from dataclasses import replace

    from training.tasks.speech.augment import room_and_channel

    base = replace(get_task("speech").Config(), noise_prob=0.0)
    x = torch.cat([tone(1000).float(), (tone(1000).float() + tone(6000).float())])
    g = lambda: torch.Generator().manual_seed(0)   # noqa: E731
    clipped = room_and_channel(replace(base, clip_prob=1.0), x, g())
    assert float(clipped.abs().amax()) <= 0.8 * float(x.abs().amax()) + 1e-6
    louder = room_and_channel(replace(base, gain_db=12.0), x, g())
    assert not torch.allclose(rms(louder), rms(x))
    phone = room_and_channel(replace(base, band_prob=1.0), x, g())
    assert band_energy(phone[1:].half(), 5980, 6020) < 0.05 * band_energy(x[1:].half(), 5980, 6020)
    assert torch.equal(room_and_channel(base, x, g()), x)                              # every one off


def test_a_run_records_its_augmentation_and_a_continued_run_may_change_it(tmp_path):
    import json

    from test_speech import TINY, make_audio_parquet
    from training.cli import main

    data, first = make_audio_parquet(tmp_path / "words"), tmp_path / "first"
    flags = ["--reverb-prob", "0.5", "--band-prob", "0.3", "--gain-db", "6", "--clip-prob", "0.1"]
    main(["speech", "--dataset", str(data), "--output", str(first), *flags, *TINY])
    model = json.loads((first / "config.json").read_text())["model"]
    assert (model["reverb_prob"], model["band_prob"], model["gain_db"], model["clip_prob"]) == (0.5, 0.3, 6.0, 0.1)
    main(["speech", "--dataset", str(data), "--output", str(tmp_path / "second"), "--init-from", str(first),
          "--reverb-prob", "0.8", *TINY])
    assert json.loads((tmp_path / "second" / "config.json").read_text())["model"]["reverb_prob"] == 0.8
