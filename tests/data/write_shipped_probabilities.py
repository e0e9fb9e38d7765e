"""Record what each shipped model gives on the demo's examples: tests/data/shipped_probabilities.json, which
tests/test_shipped.py compares against. Run it after a shipped checkpoint is retrained, on purpose:

    .venv/bin/python tests/data/write_shipped_probabilities.py [speech/fsdd ...]

With names, only those models' entries are written again (the others keep what they recorded).

Inputs per model: the first example of each label under demo/examples/ (<label>-1.png, command-<word>-1.wav,
digit-<n>-1.wav), or the first 12 example sentences. One torch thread, as the test runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data" / "shipped_probabilities.json"
EXAMPLES = REPO / "demo" / "examples"
PREFIX = {"speech/speech_commands": "command-", "speech/fsdd": "digit-"}


def inputs(name: str) -> list[str]:
    task = name.split("/")[0]
    if task == "text":
        rows = [json.loads(line) for line in (EXAMPLES / "text" / "emotion_validation.jsonl").read_text().splitlines()
                if line.strip()]
        return [row["text"] for row in rows][:12]
    pattern = "*-1.png" if task == "image" else f"{PREFIX.get(name, '')}*-1.wav"
    return [p.relative_to(REPO).as_posix() for p in sorted((EXAMPLES / task).glob(pattern))]


def main(names: list[str]) -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from demo.predictor import Predictor

    torch.set_num_threads(1)
    recorded = json.loads(OUT.read_text(encoding="utf-8")) if names else {}
    for config in sorted((REPO / "checkpoints").glob("*/*/config.json")):
        name = config.parent.relative_to(REPO / "checkpoints").as_posix()
        if names and name not in names:
            continue
        predictor = Predictor.load(config.parent)
        rows = []
        for raw in inputs(name):
            probs = predictor.predict(raw if name.startswith("text/") else str(REPO / raw))
            rows.append({"input": raw, "probabilities": [round(float(p), 6) for p in probs.values()]})
        recorded[name] = rows
    OUT.write_text(json.dumps(recorded, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}: {', '.join(f'{k} ({len(v)})' for k, v in recorded.items())}")


if __name__ == "__main__":
    main(sys.argv[1:])
