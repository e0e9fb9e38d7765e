"""The settings of the commands that act on a checkpoint (evaluate, calibrate, report, card, push, export,
migrate), as dataclasses whose `option` fields are their flags (training/settings.py), like the training
runs' settings. Flags shared with training (--device, --workers, --dataset-config, --revision,
--label-column) are written once in training/settings.py."""

from __future__ import annotations

from dataclasses import dataclass

from training.settings import HUB_CONFIG, HUB_REVISION, LABEL_COLUMN, device_option, option, workers_option

CHECKPOINT = "checkpoint folder (model.safetensors + config.json)"
RECORDED_DATASETS = ("the dataset it was trained on (default: the path recorded in config.json); repeated, in the "
                     "recorded order, for a run on several")


@dataclass
class EvaluateSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
    dataset: str = option(None, "Hub id, local folder or data file", required=True)
    dataset_config: str | None = option(None, HUB_CONFIG, type=str)
    revision: str | None = option(None, HUB_REVISION, type=str)
    split: str = option("validation", "split to score (default: %(default)s; on a dataset without one, the "
                                      "validation rows the checkpoint's run carved from train, as it recorded)")
    input_column: str | None = option(None, "input column (default: auto for the task)", type=str)
    label_column: str | None = option(None, LABEL_COLUMN, type=str)
    max_samples: int | None = option(None, "score at most this many rows", type=int)
    batch_size: int = option(256, "rows per batch")
    device: str | None = device_option()
    workers: int = workers_option()
    report_dir: str | None = option(None, "also write metrics.json and confusion_matrix.png here", type=str)
    predictions: str | None = option(None, "also write every row's probabilities to this JSON-lines file (row, "
                                           "input, label, predicted, probabilities)", type=str, metavar="FILE")
    corrupt: str | None = option(None, "score a corrupted copy of the split: speech has reverb (a room, RT60 0.5 s), "
                                       "noise (white, 10 dB SNR) and telephone (8 kHz, 300-3400 Hz)", type=str,
                                 metavar="NAME")


@dataclass
class CalibrateSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
    dataset: tuple[str, ...] | None = option(None, RECORDED_DATASETS, per_source=True)
    device: str | None = device_option()
    workers: int = workers_option()


@dataclass
class ReportSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
    dataset: tuple[str, ...] | None = option(None, "only for a checkpoint whose metrics.json holds no confusion matrix "
                                                   "(written before it was recorded), scored again on its validation "
                                                   "rows: " + RECORDED_DATASETS, per_source=True)
    device: str | None = device_option()
    workers: int = workers_option()


@dataclass
class CardSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
    dataset_id: str | None = option(None, "the dataset's Hub id (owner/name) for the card (default: the one "
                                          "recorded at training time by --dataset-id or a Hub id --dataset)", type=str,
                                    metavar="OWNER/NAME")


@dataclass
class PushSettings(CardSettings):
    repo_id: str = option(None, "model repository on the Hub, e.g. you/cifar10-resnet20", required=True)
    private: bool = option(False, "create the repository as private")
    token: str | None = option(None, "Hub token (default: the one `hf auth login` saved)", type=str)


@dataclass
class ExportSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
    quantize: str | None = option(None, "also write model.int8.onnx: onnxruntime's dynamic int8 quantisation of the "
                                        "weights", type=str, choices=("int8",))


@dataclass
class MigrateSettings:
    checkpoint: str = option(None, CHECKPOINT, required=True)
