"""Where a speech training batch's time goes: `python bench/speech_batch.py [--checkpoint ...] [--batch 64]`.

Times each stage of `speech.make_batch(train=True)` (the engine's per-batch work on the training device)
with a checkpoint's settings, against the model's forward + backward + AdamW step on the same batch, on
one CPU thread. The ratio step / (step + batch) bounds what `bench/train.py` can measure for the engine
against its limit (which is given the features ready-made). Prints medians in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speech_latency import timed  # noqa: E402  (bench/, the script's own folder, is on the path)

REPO = Path(__file__).resolve().parents[1]


def median_ms(fn, repeats: int) -> float:
    fn()   # warm-up
    return statistics.median(timed(fn, repeats))


def stages(config, x, g):
    """(name, function of nothing) for each stage of make_batch(train=True), in its order."""
    from training.tasks.speech import add_noise, log_mel, spec_augment, stretch, time_shift
    from training.tasks.speech.augment import room_and_channel

    shift = int(config.sample_rate * config.time_shift_ms / 1000)
    features = log_mel(config, x)
    return [("time shift", lambda: time_shift(x, shift, g)),
            ("rooms and channels", lambda: room_and_channel(config, x, g)),
            ("background noise", lambda: add_noise(config, x, g)),
            ("log-mel", lambda: log_mel(config, x)),
            ("stretch", lambda: stretch(features, config.stretch, g, config.time_stretch)),
            ("SpecAugment", lambda: spec_augment(config, features))]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "speech" / "speech_commands"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)

    import torch
    from torch.nn import functional as F

    from training import checkpoint as ckpt
    from training.tasks import speech

    torch.set_num_threads(1)
    model, recorded, config = ckpt.load_model(args.checkpoint, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, int(config.sample_rate * config.clip_seconds), generator=g) * 0.1
    cache = x.to(torch.float16)
    for name, fn in stages(config, x, g):
        print(f"{name:>20}: {median_ms(fn, args.repeats):6.1f} ms")
    batch = median_ms(lambda: speech.make_batch(config, cache, None, train=True, generator=g), args.repeats)
    (features,) = speech.make_batch(config, cache, None, train=True, generator=g)
    y = torch.randint(0, len(recorded["labels"]), (args.batch,), generator=g)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(features), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train = median_ms(step, args.repeats)
    print(f"{'make_batch, in all':>20}: {batch:6.1f} ms\n{'model step':>20}: {train:6.1f} ms\n"
          f"{'bound on the ratio':>20}: {train / (train + batch):.2f} (step / (step + batch))")


if __name__ == "__main__":
    main()
