"""The ``baseline`` adapter: a small PyTorch model that trains on a CPU in seconds, for a first
``model_label`` before the Qwen2-VL adapter exists, and as the floor any larger model must beat.

Text goes in as hashed character n-grams of ``user``/``agent``/``ocr``, images as thumbnails
(see ``features``); thumbnails are flipped horizontally at random during training, as the KDSL
paper does for Qwen2-VL (``kdsl.data.augment``). With ``tasks="joint"`` one network serves both
tasks, its output classes being every (task, label) pair, masked per row to the row's task; with
``tasks="separate"`` each task gets its own network trained on its own rows only (the paper's
"seesaw" question: does learning one task help or hurt the other?). Training is deterministic
under ``seed``.

    >>> adapter = BaselineAdapter.train(table, images="data/images", epochs=8, seed=0)  # doctest: +SKIP
    >>> adapter.save("model/")                                                          # doctest: +SKIP
    >>> BaselineAdapter.load("model/").predict(dev, images="data/images")               # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from kdsl.adapters.base import (
    Adapter,
    AdapterError,
    Option,
    labels_by_task,
    row_tasks,
    settings_from,
    with_predictions,
)
from kdsl.adapters.features import encode, row_thumbnails, text_ids
from kdsl.adapters.network import BaselineNetwork
from kdsl.adapters.storage import (
    read_config,
    read_weights,
    write_config,
    write_weights,
)
from kdsl.data.augment import augment_image
from kdsl.errors import LimitError
from kdsl.io import atomic_directory
from kdsl.limits import MAX_EMBEDDING_PARAMETERS, check_model_settings
from kdsl.record import TEXT_FIELDS

JOINT = "joint"
TASK_MODES = ("joint", "separate")
PREDICT_CHUNK = 256  # rows per forward pass at prediction: bounds the memory of thumbnails


@dataclass(frozen=True)
class Settings:
    """Everything that shapes the model or its training; saved in config.json."""

    tasks: str = "joint"  # joint | separate
    epochs: int = 25
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 3e-3
    text_learning_rate_factor: float = 10.0
    buckets: int = 2 ** 15  # hashed n-gram buckets
    text_dim: int = 32
    image_size: int = 64
    hidden: int = 128
    top_k: int = 5
    flip: bool = True  # horizontal-flip augmentation of thumbnails while training

    def __post_init__(self):
        check_model_settings(self, "baseline settings")  # before anything is allocated from them
        if self.buckets * self.text_dim > MAX_EMBEDDING_PARAMETERS:
            raise LimitError(f"baseline settings: buckets × text_dim = {self.buckets * self.text_dim} is above "
                             f"the limit of {MAX_EMBEDDING_PARAMETERS}")
        if self.tasks not in TASK_MODES:
            raise AdapterError(f"tasks must be one of {', '.join(TASK_MODES)}, not {self.tasks!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.top_k < 1:
            raise AdapterError("epochs, batch_size and top_k must be at least 1")


class BaselineAdapter(Adapter):
    name = "baseline"
    options = (
        Option("epochs", int, "training epochs (default 25)", minimum=1),
        Option("seed", int, "seed of the initial weights, batch order and flips (default 0)"),
        Option("tasks", TASK_MODES, "one network for both tasks, or one per task (default joint)"),
    )
    reads_images = True
    export_class = "kdsl.adapters.baseline_onnx:OnnxBaselineAdapter"

    def __init__(self, labels: dict[str, list[str]], settings: Settings, networks: dict[str, BaselineNetwork]):
        self.labels = labels
        self.settings = settings
        self.networks = networks  # "joint", or one per task
        self.training_seconds: float | None = None

    # ------------------------------------------------------------------------------ training

    @classmethod
    def train(cls, table: pa.Table, labels=None, images=None, log=None, **options) -> BaselineAdapter:
        """Fit to the labelled rows of ``table``. ``images``: the data root of ``image_paths``
        (None: no images, the image branch sees zeros). ``log``: called with a line per epoch.
        Options are the fields of ``Settings``."""
        settings = settings_from(Settings, options, cls.name)
        labels = labels_by_task(table, labels)
        tasks = table.column("task").to_pylist()
        gold = table.column("label").to_pylist()
        rows = [i for i, (t, g) in enumerate(zip(tasks, gold)) if t in labels and g is not None]
        table = table.take(rows)
        text = _text(table, settings.buckets)
        thumbnails = row_thumbnails(table, images, settings.image_size)
        started = time.perf_counter()
        torch.manual_seed(settings.seed)
        networks = {}
        for key in _network_keys(labels, settings):
            classes = output_classes(labels, key)
            index = {c: i for i, c in enumerate(classes)}
            members = [i for i in range(table.num_rows) if key == JOINT or tasks[rows[i]] == key]
            targets = [index[(tasks[rows[i]], gold[rows[i]])] for i in members]
            networks[key] = _fit(settings, classes, [text[i] for i in members],
                                 [thumbnails[i] for i in members], [tasks[rows[i]] for i in members],
                                 targets, log=log, name=key)
        adapter = cls(labels, settings, networks)
        adapter.training_seconds = time.perf_counter() - started
        return adapter

    # ---------------------------------------------------------------------------- prediction

    def predict(self, table: pa.Table, images=None) -> pa.Table:
        """``table`` with model_label / model_score / model_topk; ``images`` as for ``train``."""
        tasks = row_tasks(table, self.labels)
        labels, scores, topk = [None] * table.num_rows, [None] * table.num_rows, [None] * table.num_rows
        for start in range(0, table.num_rows, PREDICT_CHUNK):
            chunk = table.slice(start, PREDICT_CHUNK)
            text = _text(chunk, self.settings.buckets)
            thumbnails = row_thumbnails(chunk, images, self.settings.image_size)
            for key, network in self.networks.items():
                members = [i for i in range(chunk.num_rows)
                           if tasks[start + i] in self.labels and (key == JOINT or tasks[start + i] == key)]
                if not members:
                    continue
                classes = output_classes(self.labels, key)
                member_tasks = [tasks[start + i] for i in members]
                encoded = encode([text[i] for i in members], [thumbnails[i] for i in members],
                                 self.settings.image_size)
                probabilities = self._probabilities(network, encoded, _mask(classes, member_tasks).numpy())
                for row, task, p in zip(members, member_tasks, probabilities):
                    best = _top(p, classes, task, self.settings.top_k)
                    labels[start + row], scores[start + row] = best[0]["label"], best[0]["score"]
                    topk[start + row] = best
        return with_predictions(table, labels, scores, topk)

    def _probabilities(self, network, encoded, mask: np.ndarray) -> np.ndarray:
        """Class probabilities (rows × classes) of one batch; the ONNX runtime overrides it."""
        return _probabilities(network, encoded, mask)

    # ------------------------------------------------------------------------------- storage

    def save(self, directory) -> None:
        tensors = {f"{key}.{name}": value for key, network in self.networks.items()
                   for name, value in network.state_dict().items()}
        with atomic_directory(directory) as tmp:
            write_config(tmp, {"adapter": self.name, "labels": self.labels, "settings": asdict(self.settings),
                               "networks": list(self.networks)})
            write_weights(tmp, tensors)

    @classmethod
    def load(cls, directory) -> BaselineAdapter:
        config = read_config(directory)
        if config.get("runtime") == "onnx":
            raise AdapterError(f"{directory}: an ONNX export of a baseline model; load it with runtime "
                              "\"onnx\" (kdsl predict --runtime onnx)")
        try:
            settings = Settings(**config["settings"])
            labels = config["labels"]
            keys = config["networks"]
        except (KeyError, TypeError) as error:
            raise AdapterError(f"{directory}: config.json is not a baseline model's ({error})") from None
        weights = read_weights(directory)
        networks = {}
        for key in keys:
            network = _network(settings, len(output_classes(labels, key)))
            state = {name[len(key) + 1:]: value for name, value in weights.items() if name.startswith(key + ".")}
            try:
                network.load_state_dict(state)
            except RuntimeError as error:
                raise AdapterError(f"{directory}: weights do not fit the config ({error})") from None
            networks[key] = network.eval()
        return cls(labels, settings, networks)

    @classmethod
    def flip_options(cls, flip: bool) -> dict:
        return {"flip": flip}


# ---------------------------------------------------------------------------------- internals


def _network_keys(labels, settings) -> list[str]:
    return [JOINT] if settings.tasks == "joint" else list(labels)


def output_classes(labels: dict[str, list[str]], key: str) -> list[tuple[str, str]]:
    """The output classes of network ``key``: (task, label) pairs in a fixed order."""
    tasks = list(labels) if key == JOINT else [key]
    return [(task, label) for task in tasks for label in labels[task]]


def _network(settings: Settings, n_classes: int) -> BaselineNetwork:
    return BaselineNetwork(settings.buckets, settings.text_dim, settings.image_size, settings.hidden, n_classes)


def _text(table: pa.Table, buckets: int) -> list[np.ndarray]:
    columns = [c for c in TEXT_FIELDS if c in table.column_names]
    return [text_ids(record, buckets) for record in table.select(columns).to_pylist()] if columns \
        else [text_ids({}, buckets)] * table.num_rows


def _mask(classes, tasks) -> torch.Tensor:
    class_tasks = np.asarray([task for task, _ in classes], dtype=object)
    return torch.from_numpy(np.stack([class_tasks == task for task in tasks]).astype(bool))


def _inputs(encoded) -> dict:
    return {"ids": torch.from_numpy(encoded.ids), "offsets": torch.from_numpy(encoded.offsets),
                "images": torch.from_numpy(encoded.images), "image_rows": torch.from_numpy(encoded.image_rows)}


def _fit(settings, classes, text, thumbnails, tasks, targets, log, name) -> BaselineNetwork:
    network = _network(settings, len(classes))
    # Each n-gram embedding gets a gradient only in the few batches whose rows contain it, so
    # the text embedding learns at a higher rate than the dense layers (as fastText does).
    embedding = list(network.text.parameters())
    rest = [p for p in network.parameters() if all(p is not e for e in embedding)]
    optimiser = torch.optim.AdamW([
        {"params": embedding, "lr": settings.learning_rate * settings.text_learning_rate_factor},
        {"params": rest, "lr": settings.learning_rate},
    ])
    order = torch.Generator().manual_seed(settings.seed)
    mask, targets = _mask(classes, tasks), torch.tensor(targets, dtype=torch.long)
    network.train()
    for epoch in range(settings.epochs):
        total = 0.0
        for batch in torch.randperm(len(targets), generator=order).split(settings.batch_size):
            rows = batch.tolist()
            # A fresh flip decision per image, epoch and seed: the network sees both orientations.
            flipped = [[augment_image(image, f"{settings.seed}:{epoch}:{row}:{k}") for k, image in enumerate(thumbnails[row])]
                       for row in rows] if settings.flip else [thumbnails[row] for row in rows]
            encoded = encode([text[row] for row in rows], flipped, settings.image_size)
            loss = F.cross_entropy(network(**_inputs(encoded), mask=mask[batch]), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
        if log:
            log(f"{name}: epoch {epoch + 1}/{settings.epochs} loss {total / len(targets):.4f}")
    return network.eval()


@torch.no_grad()
def _probabilities(network, encoded, mask: np.ndarray) -> np.ndarray:
    network.eval()
    return network(**_inputs(encoded), mask=torch.from_numpy(mask)).softmax(-1).numpy()


def _top(probabilities: np.ndarray, classes, task: str, k: int) -> list[dict]:
    """The k most probable labels of ``task``, best first (ties: the class order)."""
    own = [i for i, (t, _) in enumerate(classes) if t == task]
    best = sorted(own, key=lambda i: -probabilities[i])[:k]
    return [{"label": classes[i][1], "score": float(probabilities[i])} for i in best]
