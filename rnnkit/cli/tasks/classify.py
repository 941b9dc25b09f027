"""Sequence classification: one label per sequence (many-to-one).

Data: scikit-learn's digits read row by row (8 time steps of 8 pixels; the default), NumPy
files (``--npy X.npy --labels y.npy``: X (N, T, F) or (N, T), y (N,) of ints or strings), or a
CSV with one sample per row (``--csv FILE --target LABEL_COLUMN [--features COL ...]
[--timesteps T]``: the feature columns, in order, are read as T steps of F = columns / T
features; T defaults to one column per step).

Split: a seeded random permutation, 70% train, 15% validation, 15% test. Features are
standardised with a StandardScaler fitted on the training samples only. Labels are the sorted
distinct values, numbered 0..C-1 (names kept for predict). Baseline: always predicting the
most frequent training class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..config import RunConfig
from ..table import read_csv
from ._base import Prepared, Report, Task, recurrent_stack, split_counts

__all__ = ["ClassifyTask", "load_samples"]

FRACTIONS = (0.7, 0.15, 0.15)


def load_samples(config: RunConfig, labels_required: bool = True
                 ) -> tuple[NDArray[np.float32], NDArray[Any] | None, str]:
    """X (N, T, F) float32, raw labels (N,) or None, and a description of the source.

    Reads ``config.npy`` (+ ``config.labels``), else ``config.csv``, else the digits.
    """
    csv, npy = config.csv, config.npy
    if npy:
        x = _load_npy(Path(npy), "--npy")
        labels = None
        if config.labels and labels_required:
            labels = _load_npy(Path(config.labels), "--labels")
            if labels.ndim != 1:
                raise ValueError(f"--labels {config.labels} must be 1-D (one label per sample), "
                                 f"got shape {labels.shape}")
            if len(labels) != len(x):
                raise ValueError(f"--npy has {len(x)} samples but --labels has {len(labels)}")
        if x.dtype.kind not in "iuf":
            raise ValueError(f"--npy {npy} must hold numbers, got dtype {x.dtype}")
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValueError(f"--npy {npy} must have shape (samples, steps) or (samples, steps, "
                             f"features), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"--npy {npy} holds NaN or infinite values")
        return x.astype(np.float32), labels, str(npy)
    if csv:
        table = read_csv(Path(csv))
        if labels_required and not config.target:
            raise ValueError(f"--target is required with --csv for --task classify: name the "
                             f"label column (the columns of {csv} are: "
                             f"{', '.join(table.columns)})")
        if labels_required:
            table.require([config.target], "--target")  # type: ignore[list-item]
        features = config.features or [c for c in table.columns if c != config.target]
        table.require(features, "--features")
        flat = table.matrix(features).astype(np.float32)  # (N, columns)
        steps = config.timesteps or flat.shape[1]
        if flat.shape[1] % steps:
            raise ValueError(f"--timesteps {steps} does not divide the {flat.shape[1]} feature "
                             "columns into equal steps")
        x = flat.reshape(len(flat), steps, flat.shape[1] // steps)
        labels = np.array(table.text(config.target)) if (
            labels_required and config.target) else None
        return x, labels, str(csv)
    from ... import data

    x, y = data.load_digits_sequences()
    return x, y, "built-in dataset digits (scikit-learn, 8 rows x 8 pixels)"


def _load_npy(path: Path, option: str) -> NDArray[Any]:
    if not path.exists():
        raise FileNotFoundError(f"{option}: file {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{option}: {path} is not a NumPy .npy file ({e})") from None


class ClassifyTask(Task):
    name = "classify"
    datasets = ("digits",)
    plots = ("confusion_matrix.png",)
    defaults = {"units": 64, "epochs": 15, "batch_size": 32, "lr": 3e-3}

    def check(self, config: RunConfig) -> None:
        if config.text:
            raise ValueError("--text is not used by --task classify")
        if config.csv and config.npy:
            raise ValueError("give either --csv or --npy, not both")
        if config.npy and not config.labels:
            raise ValueError("--npy needs --labels FILE.npy (one label per sample)")
        if config.labels and not config.npy:
            raise ValueError("--labels goes with --npy")
        if config.dataset and config.dataset not in self.datasets:
            raise ValueError(f"--dataset {config.dataset!r} is not a classify dataset: choose "
                             f"from {', '.join(self.datasets)}")
        if config.horizon != 1 or config.date_column:
            raise ValueError("--horizon/--date-column are forecast options")

    def prepare(self, config: RunConfig) -> Prepared:
        from ...data import StandardScaler

        x, labels, source = load_samples(config)
        assert labels is not None
        names, y = np.unique(labels.astype(str) if labels.dtype.kind not in "iub" else labels,
                             return_inverse=True)
        if len(names) < 2:
            raise ValueError(f"{source}: the labels hold a single class ({names[0]!r}); "
                             "classification needs at least two")
        n_train, n_val, _ = split_counts(len(x), FRACTIONS)
        order = np.random.default_rng(config.seed).permutation(len(x))
        train, val, test = np.split(order, [n_train, n_train + n_val])
        scaler = StandardScaler().fit(x[train])
        x = scaler.transform(x).astype(np.float32)
        y = y.astype(np.int64)
        preprocessing = {
            "task": "classify", "classes": [str(n) for n in names],
            "timesteps": int(x.shape[1]), "features": int(x.shape[2]),
            "csv_features": config.features or None, "scaler": scaler.to_dict(),
        }
        described = (f"{source}: {len(x)} sequences of {x.shape[1]} steps x {x.shape[2]} "
                     f"features, {len(names)} classes; {len(train)}/{len(val)}/{len(test)} "
                     "train/val/test")
        return Prepared(x[train], y[train], x[val], y[val], x[test], y[test], preprocessing,
                        described, extra={"classes": [str(n) for n in names]})

    def build_model(self, config: RunConfig, data: Prepared) -> Any:
        from ... import layers
        from ...models import Sequential

        classes = len(data.preprocessing["classes"])
        return Sequential([layers.Input(shape=data.input_shape),
                           *recurrent_stack(config, return_sequences=False),
                           layers.Dense(classes)])

    def compile_args(self, config: RunConfig, data: Prepared) -> dict[str, Any]:
        from ...training import losses, optimizers

        return {"optimizer": optimizers.Adam(learning_rate=config.lr),
                "loss": losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": ["accuracy"]}

    def evaluate(self, model: Any, config: RunConfig, data: Prepared,
                 plot_dir: Path | None) -> Report:
        classes = data.extra["classes"]
        logits = model.predict(data.x_test, batch_size=256, verbose=0)
        predicted = np.argmax(logits, axis=-1)
        accuracy = float(np.mean(predicted == data.y_test))
        majority = int(np.bincount(data.y_train, minlength=len(classes)).argmax())
        chance = float(np.mean(data.y_test == majority))
        matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
        np.add.at(matrix, (data.y_test, predicted), 1)
        plots = []
        if plot_dir is not None:
            from ..plots import confusion_matrix_plot

            path = plot_dir / "confusion_matrix.png"
            confusion_matrix_plot(matrix, classes, path,
                                  title=f"Confusion matrix (test split, accuracy {accuracy:.1%})")
            plots.append(path)
        metrics = {"model_accuracy": accuracy, "majority_class_accuracy": chance,
                   "test_samples": int(len(data.y_test)), "classes": classes,
                   "confusion_matrix": matrix.tolist()}
        from ..._kernels._cell_spec import spec

        cell = spec(config.cell).keras_class
        rows = [(f"rnnkit {cell}", [f"{accuracy:.2%}"]),
                (f"majority class ({classes[majority]})", [f"{chance:.2%}"])]
        headline = (f"Test accuracy {accuracy:.1%} on {len(data.y_test)} sequences "
                    f"({len(classes)} classes; always guessing the majority class: {chance:.1%})")
        return Report(metrics, ["accuracy"], rows, headline, plots)
