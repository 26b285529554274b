"""The ``qwen2vl`` adapter: Qwen2-VL as a classifier, by scoring every label of the row's task as
the answer to the challenge's prompt.

The model comes from a LOCAL folder (``Qwen2VLForConditionalGeneration``, its tokenizer and its
``Qwen2VLImageProcessor``; never a hub name, ``local_files_only=True``). Each row becomes a chat
prompt in the challenge's wording: an intent row the dialogue as ``用户:`` / ``客服:`` lines between
``<用户与客服的对话 START>`` / ``END`` and the intent label list; a scene row ``Picture 1: <image>``,
the scene prompt and the scene label list. An image is ``<|vision_start|>`` + as many
``<|image_pad|>`` as the image processor's grid gives + ``<|vision_end|>``. A prompt longer than
``cutoff`` tokens (1024) loses its oldest dialogue tokens (an image in the dialogue goes whole).

Records keep ``user`` and ``agent`` text apart (turn order between them is not in the record), so
the dialogue is rebuilt as: the images (``用户: <image>``), the user lines, then the agent lines.

Prediction: the prompt runs once (``use_cache=True``); then every candidate label of the task
(its tokens + ``<|im_end|>``) is scored as a continuation from that cached prefix, all labels in
one batch. A label's score is the sum of its tokens' log-probabilities; ``model_score`` /
``model_topk`` are the softmax of those over the task's labels.

Training: full fine-tuning with AdamW (lr 5e-6, 3 epochs), the loss being the cross-entropy of
the gold label's tokens given the prompt; one row per forward pass, gradients accumulated over
``gradient_accumulation`` rows; images flipped horizontally at random (``kdsl.data.augment``);
optional gradient checkpointing; bf16 on CUDA, fp32 on a CPU.

    >>> adapter = Qwen2VLAdapter.train(table, model="weights/Qwen2-VL-7B-Instruct",
    ...                                images="data/images")                    # doctest: +SKIP
    >>> adapter.save("model/")                                                   # doctest: +SKIP
    >>> Qwen2VLAdapter.load("model/").predict(dev, images="data/images")         # doctest: +SKIP
    >>> Qwen2VLAdapter.from_model("weights/Qwen2-VL-7B-Instruct",
    ...                           labels={"intent": [...]}).predict(dev)         # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import torch

from kdsl.adapters.base import (
    Adapter,
    AdapterError,
    labels_by_task,
    row_tasks,
    with_predictions,
)
from kdsl.adapters.storage import atomic_directory, read_config, write_config
from kdsl.data.augment import augment_image

MODEL_FOLDER = "model"  # the Hugging Face folder inside a saved model directory
SYSTEM = "You are a helpful assistant."
START, END = "<用户与客服的对话 START>", "<用户与客服的对话 END>"
INTENT_HEAD = "你是一个电商客服专家，请根据用户与客服的多轮对话判断用户的意图分类标签。\n" + START + "\n"
INTENT_TAIL = "\n" + END + "\n请直接只输出分类标签结果，不需要其他多余的话。\n以下是可以参考的分类标签为：{labels}"
SCENE_HEAD = "Picture 1: "
SCENE_TAIL = ("\n你是一个电子商务专家，请根据用户在客服对话中上传的图片判断图片所属的场景分类标签。"
              "请直接只输出分类标签结果，不需要其他多余的话。\n以下是可以参考的分类标签为：{labels}")
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class Settings:
    """What shapes training and prediction; saved in config.json."""

    epochs: int = 3
    learning_rate: float = 5e-6
    weight_decay: float = 0.0
    gradient_accumulation: int = 8
    gradient_checkpointing: bool = False
    flip_probability: float = 0.5
    seed: int = 0
    cutoff: int = 1024
    top_k: int = 5
    device: str = "auto"  # auto: cuda when available, else cpu

    def __post_init__(self):
        if self.epochs < 1 or self.gradient_accumulation < 1 or self.top_k < 1 or self.cutoff < 16:
            raise AdapterError("epochs, gradient_accumulation and top_k must be at least 1, cutoff at least 16")


@dataclass
class Prompt:
    """One row's prompt, tokenised: ids, and the image tensors its ``<|image_pad|>`` stand for."""

    ids: list[int]
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None


class Qwen2VLAdapter(Adapter):
    name = "qwen2vl"

    def __init__(self, labels, settings: Settings, model, tokenizer, image_processor):
        self.labels = labels
        self.settings = settings
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.training_seconds: float | None = None
        self._continuations: dict[str, list[list[int]]] = {}
        self._special = {t: _token_id(tokenizer, t) for t in (VISION_START, VISION_END, IMAGE_PAD, IM_START, IM_END)}

    # ------------------------------------------------------------------------ construction

    @classmethod
    def from_model(cls, folder, labels: dict[str, list[str]], **options) -> Qwen2VLAdapter:
        """An adapter over the model in a local ``folder``, untrained (zero-shot label scoring)."""
        settings = _settings(options)
        model, tokenizer, image_processor = _load_folder(folder, _device(settings))
        return cls({task: sorted(names) for task, names in labels.items()}, settings, model, tokenizer,
                   image_processor)

    @classmethod
    def train(cls, table: pa.Table, labels=None, images=None, log=None, model=None, **options) -> Qwen2VLAdapter:
        """Fine-tune the model in the local folder ``model`` on the labelled rows of ``table``.
        ``images``: the data root of ``image_paths``. Options are the fields of ``Settings``."""
        if model is None:
            raise AdapterError("the qwen2vl adapter needs model=<a local Qwen2-VL folder>")
        labels = labels_by_task(table, labels)
        adapter = cls.from_model(model, labels, **options)
        adapter.fit(table, images=images, log=log)
        return adapter

    def fit(self, table: pa.Table, images=None, log=None) -> list[float]:
        """Train on the labelled rows of ``table``; the mean loss of every epoch."""
        settings, model = self.settings, self.model
        tasks, gold = table.column("task").to_pylist(), table.column("label").to_pylist()
        rows = [i for i, (t, g) in enumerate(zip(tasks, gold)) if t in self.labels and g is not None]
        for i in rows:
            if gold[i] not in self.labels[tasks[i]]:
                raise AdapterError(f"label {gold[i]!r} is not one of task {tasks[i]!r}")
        if not rows:
            raise AdapterError("training data has no labelled row of a known task")
        records = table.take(rows).to_pylist()
        started = time.perf_counter()
        torch.manual_seed(settings.seed)
        optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                      weight_decay=settings.weight_decay)
        if settings.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        model.train()
        order = random.Random(f"kdsl-qwen2vl:{settings.seed}")
        losses = []
        for epoch in range(settings.epochs):
            positions = list(range(len(records)))
            order.shuffle(positions)
            total = 0.0
            optimiser.zero_grad()
            for step, position in enumerate(positions, 1):
                record = records[position]
                pictures = [augment_image(image, f"{settings.seed}:{epoch}:{position}:{k}", settings.flip_probability)
                            for k, image in enumerate(_row_images(record, images))]
                loss = self.loss(record, pictures, record["label"])
                (loss / settings.gradient_accumulation).backward()
                total += loss.item()
                if step % settings.gradient_accumulation == 0 or step == len(positions):
                    optimiser.step()
                    optimiser.zero_grad()
            losses.append(total / len(positions))
            if log:
                log(f"qwen2vl: epoch {epoch + 1}/{settings.epochs} loss {losses[-1]:.4f}")
        if settings.gradient_checkpointing:
            model.gradient_checkpointing_disable()
            model.config.use_cache = True
        model.eval()
        self.training_seconds = time.perf_counter() - started
        return losses

    def loss(self, record: dict, pictures: list, label: str) -> torch.Tensor:
        """Cross-entropy (mean over tokens) of ``label`` + ``<|im_end|>`` given the row's prompt."""
        continuation = self._label_ids(label)
        prompt = self.prompt(record, pictures, reserve=len(continuation))
        ids = torch.tensor([prompt.ids + continuation], device=self.model.device)
        targets = ids.clone()
        targets[0, :len(prompt.ids)] = -100
        return self.model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=targets,
                          use_cache=False, **self._vision(prompt)).loss

    # --------------------------------------------------------------------------- prompting

    def prompt(self, record: dict, pictures: list, reserve: int = 0) -> Prompt:
        """The chat prompt of ``record`` (ending with the assistant header), its dialogue cut so
        that prompt + ``reserve`` tokens fit ``cutoff``."""
        task = record.get("task")
        names = json.dumps(self.labels.get(task, []), ensure_ascii=False)
        # pieces: (kind, value, may be cut); kind "text" (a string) or "image" (a PIL image)
        pieces = [("text", f"{IM_START}system\n{SYSTEM}{IM_END}\n{IM_START}user\n", False)]
        if task == "scene":
            pieces.append(("text", SCENE_HEAD, False))
            pieces += [("image", image, False) for image in pictures[:1]]
            pieces += [("text", "\n", False), *[("image", image, False) for image in pictures[1:]]]
            pieces.append(("text", SCENE_TAIL.format(labels=names), False))
        else:
            pieces.append(("text", INTENT_HEAD, False))
            for image in pictures:
                pieces += [("text", "用户: ", True), ("image", image, True), ("text", "\n", True)]
            lines = [f"用户: {line}" for line in (record.get("user") or "").split("\n") if line]
            lines += [f"客服: {line}" for line in (record.get("agent") or "").split("\n") if line]
            if record.get("ocr"):
                lines.append(f"图片文字: {record['ocr']}")
            pieces.append(("text", "\n".join(lines), True))
            pieces.append(("text", INTENT_TAIL.format(labels=names), False))
        pieces.append(("text", f"{IM_END}\n{IM_START}assistant\n", False))
        return self._encode(pieces, self.settings.cutoff - reserve)

    def _encode(self, pieces, budget: int) -> Prompt:
        units = []  # (ids, image tensors or None, may be cut)
        for kind, value, cuttable in pieces:
            if kind == "text":
                ids = self.tokenizer(value, add_special_tokens=False)["input_ids"] if value else []
                units.append((ids, None, cuttable))
            else:
                processed = self.image_processor(images=[value], return_tensors="pt")
                grid = processed["image_grid_thw"]
                n = int(grid.prod()) // self.image_processor.merge_size ** 2
                ids = [self._special[VISION_START]] + [self._special[IMAGE_PAD]] * n + [self._special[VISION_END]]
                units.append((ids, (processed["pixel_values"], grid), cuttable))
        excess = sum(len(ids) for ids, _, _ in units) - budget
        for k, (ids, image, cuttable) in enumerate(units):  # oldest dialogue first
            if excess <= 0:
                break
            if not cuttable:
                continue
            if image is not None or len(ids) <= excess:
                units[k] = ([], None, cuttable)
                excess -= len(ids)
            else:
                units[k] = (ids[excess:], None, cuttable)
                excess = 0
        ids = [i for unit, _, _ in units for i in unit]
        images = [image for _, image, _ in units if image is not None]
        if not images:
            return Prompt(ids)
        return Prompt(ids, torch.cat([p for p, _ in images]), torch.cat([g for _, g in images]))

    def _label_ids(self, label: str) -> list[int]:
        return self.tokenizer(label, add_special_tokens=False)["input_ids"] + [self._special[IM_END]]

    def continuations(self, task: str) -> list[list[int]]:
        """The token ids that each label of ``task`` is scored on (label + ``<|im_end|>``)."""
        if task not in self._continuations:
            self._continuations[task] = [self._label_ids(label) for label in self.labels[task]]
        return self._continuations[task]

    def _vision(self, prompt: Prompt) -> dict:
        if prompt.pixel_values is None:
            return {}
        return {"pixel_values": prompt.pixel_values.to(self.model.device, self.model.dtype),
                "image_grid_thw": prompt.image_grid_thw.to(self.model.device)}

    # --------------------------------------------------------------------------- prediction

    @torch.no_grad()
    def label_logprobs(self, prompt: Prompt, continuations: list[list[int]]) -> torch.Tensor:
        """log P(continuation | prompt) for every continuation: the prompt runs once with the KV
        cache on, then all continuations run together from the cached prefix."""
        model, device = self.model, self.model.device
        ids = torch.tensor([prompt.ids], device=device)
        mask = torch.ones_like(ids)
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, **self._vision(prompt))
        first = out.logits[0, -1].float().log_softmax(-1)
        scores = torch.stack([first[c[0]] for c in continuations])
        longest = max(len(c) for c in continuations)
        if longest == 1:
            return scores
        k = len(continuations)
        # Feed tokens 1..n-1 of every continuation (right-padded: a causal model's real tokens
        # never see the padding after them, and the padded positions' outputs are ignored).
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        feed = torch.tensor([c[:-1] + [pad] * (longest - len(c)) for c in continuations], device=device)
        positions, _ = model.model.get_rope_index(ids, prompt.image_grid_thw.to(device)
                                                  if prompt.image_grid_thw is not None else None, None, mask)
        start = positions.max() + 1  # text after the prompt: all three rope axes advance together
        position_ids = (start + torch.arange(longest - 1, device=device)).view(1, 1, -1).expand(3, k, -1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(k)
        logits = model(input_ids=feed, attention_mask=torch.ones(k, len(prompt.ids) + longest - 1, device=device,
                                                                 dtype=torch.long),
                       position_ids=position_ids, past_key_values=cache, use_cache=True).logits.float()
        logprobs = logits.log_softmax(-1)
        for row, c in enumerate(continuations):
            if len(c) > 1:
                targets = torch.tensor(c[1:], device=device)
                scores[row] = scores[row] + logprobs[row, :len(c) - 1].gather(-1, targets[:, None]).sum()
        return scores

    def predict(self, table: pa.Table, images=None) -> pa.Table:
        """``table`` with model_label / model_score / model_topk; ``images``: the data root."""
        tasks = row_tasks(table, self.labels)
        labels, scores, topk = [None] * table.num_rows, [None] * table.num_rows, [None] * table.num_rows
        self.model.eval()
        for i, record in enumerate(table.to_pylist()):
            task = tasks[i]
            if task not in self.labels:
                continue
            record["task"] = task
            continuations = self.continuations(task)
            prompt = self.prompt(record, _row_images(record, images), reserve=max(map(len, continuations)))
            probabilities = self.label_logprobs(prompt, continuations).softmax(-1).cpu()
            order = sorted(range(len(continuations)), key=lambda j: -float(probabilities[j]))
            best = [{"label": self.labels[task][j], "score": float(probabilities[j])}
                    for j in order[:self.settings.top_k]]
            labels[i], scores[i], topk[i] = best[0]["label"], best[0]["score"], best
        return with_predictions(table, labels, scores, topk)

    # ------------------------------------------------------------------------------ storage

    def save(self, directory) -> None:
        with atomic_directory(directory) as tmp:
            write_config(tmp, {"adapter": self.name, "labels": self.labels, "settings": asdict(self.settings),
                               "model": MODEL_FOLDER})
            folder = Path(tmp) / MODEL_FOLDER
            self.model.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
            self.image_processor.save_pretrained(folder)

    @classmethod
    def load(cls, directory) -> Qwen2VLAdapter:
        config = read_config(directory)
        try:
            labels, settings = config["labels"], Settings(**config["settings"])
            folder = Path(directory) / config["model"]
        except (KeyError, TypeError) as error:
            raise AdapterError(f"{directory}: config.json is not a qwen2vl model's ({error})") from None
        model, tokenizer, image_processor = _load_folder(folder, _device(settings))
        return cls(labels, settings, model, tokenizer, image_processor)


# ---------------------------------------------------------------------------------- internals


def _settings(options) -> Settings:
    unknown = set(options) - {f.name for f in fields(Settings)}
    if unknown:
        raise AdapterError(f"the qwen2vl adapter takes no option {', '.join(sorted(unknown))}")
    return Settings(**options)


def _device(settings: Settings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def _load_folder(folder, device: torch.device):
    """Model, tokenizer and image processor from a local folder; bf16 on CUDA, fp32 elsewhere."""
    from transformers import (
        AutoTokenizer,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
    )

    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterError(f"{folder}: no such model folder (the qwen2vl adapter loads local folders only)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        model = Qwen2VLForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        image_processor = Qwen2VLImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise AdapterError(f"{folder}: not a Qwen2-VL folder ({error})") from None
    return model.to(device).eval(), tokenizer, image_processor


def _token_id(tokenizer, token: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise AdapterError(f"the tokenizer has no special token {token}")
    return ids[0]


def _row_images(record: dict, root) -> list:
    """The row's images as RGB PIL images; unreadable or missing files are left out, and no
    image is read without a data root."""
    from PIL import Image, UnidentifiedImageError

    if root is None:
        return []
    images = []
    for name in record.get("image_paths") or []:
        try:
            with Image.open(Path(root) / name) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError):
            continue
    return images
