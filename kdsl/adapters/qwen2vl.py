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

Training: full fine-tuning with AdamW (lr 5e-6, 3 epochs), or LoRA (``lora_rank`` > 0: peft
adapters on the language model's attention and MLP projections, the rest frozen), the loss being
the cross-entropy of the gold label's tokens given the prompt; one row per forward pass,
gradients accumulated over ``gradient_accumulation`` rows; images flipped horizontally at random
(``kdsl.data.augment``); optional gradient checkpointing; bf16 on CUDA, fp32 on a CPU.

With ``checkpoint=DIR``, ``fit`` writes a checkpoint after every epoch (the trainable weights,
AdamW's state, the epoch, the losses so far and the torch RNG state), atomically; with
``resume=True`` it continues from one, giving the weights an uninterrupted run gives. A LoRA
model saves only its adapter (peft's ``adapter_config.json`` + ``adapter_model.safetensors``) and
the absolute path of its base model folder, which must still be there to load it.

    >>> adapter = Qwen2VLAdapter.train(table, model="weights/Qwen2-VL-7B-Instruct",
    ...                                images="data/images")                    # doctest: +SKIP
    >>> adapter.save("model/")                                                   # doctest: +SKIP
    >>> Qwen2VLAdapter.load("model/").predict(dev, images="data/images")         # doctest: +SKIP
    >>> Qwen2VLAdapter.from_model("weights/Qwen2-VL-7B-Instruct",
    ...                           labels={"intent": [...]}).predict(dev)         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import torch

from kdsl.adapters.base import (
    Adapter,
    AdapterError,
    Option,
    labels_by_task,
    row_tasks,
    settings_from,
    with_predictions,
)
from kdsl.adapters.storage import (
    read_config,
    read_weights,
    write_config,
    write_weights,
)
from kdsl.data.augment import augment_image
from kdsl.data.images import ImageRejected, open_image
from kdsl.io import atomic_directory
from kdsl.limits import check_model_settings

MODEL_FOLDER = "model"  # the Hugging Face folder inside a saved model directory
LORA_FOLDER = "lora"  # peft's adapter folder inside a saved LoRA model directory
# The language model's linear layers (the vision tower's are named qkv / proj / fc1 / fc2).
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CHECKPOINT_STATE, CHECKPOINT_TRAINER = "checkpoint.json", "trainer.pt"
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
    lora_rank: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0

    def __post_init__(self):
        check_model_settings(self, "qwen2vl settings")
        if self.epochs < 1 or self.gradient_accumulation < 1 or self.top_k < 1 or self.cutoff < 16:
            raise AdapterError("epochs, gradient_accumulation and top_k must be at least 1, cutoff at least 16")
        if self.lora_rank < 0 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise AdapterError("lora_rank must be at least 0, lora_alpha above 0, lora_dropout in [0, 1)")


@dataclass
class Prompt:
    """One row's prompt, tokenised: ids, and the image tensors its ``<|image_pad|>`` stand for."""

    ids: list[int]
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None


class Qwen2VLAdapter(Adapter):
    name = "qwen2vl"
    options = (
        Option("model", "dir", "the LOCAL Qwen2-VL folder to fine-tune (model, tokenizer, image processor)",
               required=True, config_key="base"),
        Option("epochs", int, "training epochs (default 3)", minimum=1),
        Option("seed", int, "seed of the LoRA start, row order and flips (default 0)"),
        Option("learning_rate", float, "AdamW learning rate (default 5e-6)", minimum=0, above=True, flag="--lr"),
        Option("gradient_accumulation", int, "rows per optimiser step (default 8)", minimum=1, flag="--grad-accum"),
        Option("gradient_checkpointing", bool, "trade compute for memory while training"),
        Option("cutoff", int, "most prompt + label tokens (default 1024; the oldest dialogue is cut)", minimum=16),
        Option("lora", bool, "train LoRA adapters on the language model instead of every weight; the model "
                             "directory then holds only the adapter and the base folder's path"),
        Option("lora_rank", int, "LoRA rank (default 8)", minimum=1, requires="lora"),
        Option("lora_alpha", float, "LoRA scaling alpha (default 16)", minimum=0, above=True, requires="lora"),
        Option("resume", bool, "continue from the checkpoint beside the output (written after every epoch) "
                               "if it is there"),
    )
    reads_images = True
    wants_gpu = True
    keeps_checkpoint = True
    export_class = "kdsl.adapters.qwen2vl_onnx:OnnxQwen2VLAdapter"

    def __init__(self, labels, settings: Settings, model, tokenizer, image_processor, base=None, peft=None):
        self.labels = labels
        self.base = base  # the model folder it was loaded from (a LoRA model's base)
        self.peft = peft  # the PeftModel wrapping ``model`` (modified in place) when LoRA is on
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
        settings = settings_from(Settings, options, cls.name)
        model, tokenizer, image_processor = _load_folder(folder, _device(settings))
        peft = None
        if settings.lora_rank:
            from peft import LoraConfig, get_peft_model

            # The adapters' random start comes from the seed, so that equal settings train alike.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                peft = get_peft_model(model, LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha,
                                                        lora_dropout=settings.lora_dropout,
                                                        target_modules=LORA_TARGETS))
        return cls({task: sorted(names) for task, names in labels.items()}, settings, model, tokenizer,
                   image_processor, base=Path(folder).resolve(), peft=peft)

    @classmethod
    def train(cls, table: pa.Table, labels=None, images=None, log=None, model=None, checkpoint=None,
              resume=False, lora=False, **options) -> Qwen2VLAdapter:
        """Fine-tune the model in the local folder ``model`` on the labelled rows of ``table``.
        ``images``: the data root of ``image_paths``; ``checkpoint`` / ``resume``: as in ``fit``;
        ``lora``: LoRA of rank ``lora_rank`` (8 unless given). Options are the fields of
        ``Settings``."""
        if model is None:
            raise AdapterError("the qwen2vl adapter needs model=<a local Qwen2-VL folder>")
        if lora and not options.get("lora_rank"):
            options["lora_rank"] = 8
        labels = labels_by_task(table, labels)
        adapter = cls.from_model(model, labels, **options)
        adapter.fit(table, images=images, log=log, checkpoint=checkpoint, resume=resume)
        return adapter

    def fit(self, table: pa.Table, images=None, log=None, checkpoint=None, resume=False) -> list[float]:
        """Train on the labelled rows of ``table``; the mean loss of every epoch.

        ``checkpoint``: a directory written (atomically) after every epoch. An existing one is
        an error unless ``resume``; with ``resume``, training continues after its last epoch
        (and starts afresh when there is none). The caller removes it once the model is saved."""
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
        trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        optimiser = torch.optim.AdamW(trainable.values(), lr=settings.learning_rate,
                                      weight_decay=settings.weight_decay)
        losses: list[float] = []
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            fingerprint = _fingerprint(settings, self.labels, records)
            if checkpoint.exists() and not resume:
                raise AdapterError(f"{checkpoint}: a checkpoint of an earlier run is there; resume it "
                                   "(resume=True; kdsl train: --resume) or remove it")
            if checkpoint.exists():
                losses = _restore(checkpoint, fingerprint, trainable, optimiser)
                if log:
                    log(f"qwen2vl: resuming after epoch {len(losses)}/{settings.epochs} from {checkpoint}")
        if settings.gradient_checkpointing:
            # Non-reentrant: with LoRA the checkpointed inputs need no grad for the adapters to get one.
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.config.use_cache = False
        model.train()
        for epoch in range(len(losses), settings.epochs):
            # One shuffle per epoch from its own seed, so that a resumed run needs no saved order.
            positions = list(range(len(records)))
            random.Random(f"kdsl-qwen2vl:{settings.seed}:{epoch}").shuffle(positions)
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
            if checkpoint is not None:
                _save_checkpoint(checkpoint, fingerprint, losses, trainable, optimiser)
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
        """Full fine-tuning: the whole Hugging Face folder. LoRA: only the adapter, and the base
        folder's absolute path (its weights are not copied)."""
        with atomic_directory(directory) as tmp:
            config = {"adapter": self.name, "labels": self.labels, "settings": asdict(self.settings)}
            if self.peft is not None:
                write_config(tmp, {**config, "base_model": str(self.base), "lora": LORA_FOLDER})
                self.peft.save_pretrained(Path(tmp) / LORA_FOLDER, safe_serialization=True)
                return
            write_config(tmp, {**config, "model": MODEL_FOLDER})
            folder = Path(tmp) / MODEL_FOLDER
            self.model.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
            self.image_processor.save_pretrained(folder)

    @classmethod
    def flip_options(cls, flip: bool) -> dict:
        return {"flip_probability": 0.5 if flip else 0.0}  # each image flipped with this probability

    @classmethod
    def load(cls, directory) -> Qwen2VLAdapter:
        config = read_config(directory)
        try:
            labels, settings = config["labels"], Settings(**config["settings"])
            lora = config.get("lora")
            folder = Path(config["base_model"]) if lora else Path(directory) / config["model"]
        except (KeyError, TypeError) as error:
            raise AdapterError(f"{directory}: config.json is not a qwen2vl model's ({error})") from None
        if lora and not folder.is_dir():
            raise AdapterError(f"{directory}: its LoRA adapter applies to the base model folder {folder} "
                               "(config.json 'base_model'), which is not there")
        model, tokenizer, image_processor = _load_folder(folder, _device(settings))
        peft = None
        if lora:
            from peft import PeftModel

            try:
                peft = PeftModel.from_pretrained(model, Path(directory) / lora)
            except (OSError, ValueError) as error:
                raise AdapterError(f"{Path(directory) / lora}: not a LoRA adapter folder ({error})") from None
        return cls(labels, settings, model.eval(), tokenizer, image_processor, base=folder.resolve(), peft=peft)


# ---------------------------------------------------------------------------------- internals


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


def _fingerprint(settings: Settings, labels, records) -> str:
    """What a checkpoint must have been trained on to be resumed: the settings (but the
    device), the labels and the training rows."""
    what = {**asdict(settings), "device": None, "labels": labels, "records": records}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _save_checkpoint(directory: Path, fingerprint: str, losses, trainable: dict, optimiser) -> None:
    with atomic_directory(directory) as tmp:
        write_weights(tmp, trainable)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save({"optimizer": optimiser.state_dict(), "rng": rng}, tmp / CHECKPOINT_TRAINER)
        (tmp / CHECKPOINT_STATE).write_text(json.dumps({"fingerprint": fingerprint, "losses": losses}) + "\n",
                                            encoding="utf-8")


def _restore(directory: Path, fingerprint: str, trainable: dict, optimiser) -> list[float]:
    """Load a checkpoint into the trainable weights and the optimiser; the losses of its epochs."""
    try:
        state = json.loads((directory / CHECKPOINT_STATE).read_text(encoding="utf-8"))
        weights = read_weights(directory)
        # weights_only: the unpickler accepts tensors and plain containers only, never code.
        trainer = torch.load(directory / CHECKPOINT_TRAINER, weights_only=True)
    except (OSError, ValueError, RuntimeError, AdapterError) as error:
        raise AdapterError(f"{directory}: not a readable qwen2vl checkpoint ({error}); remove it to start afresh") \
            from None
    if state.get("fingerprint") != fingerprint:
        raise AdapterError(f"{directory}: the checkpoint is of other training rows, labels or settings; "
                           "remove it to start afresh")
    if set(weights) != set(trainable):
        raise AdapterError(f"{directory}: the checkpoint's weights are not this model's trainable ones")
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(weights[name])
    optimiser.load_state_dict(trainer["optimizer"])
    torch.set_rng_state(trainer["rng"]["torch"])
    if "cuda" in trainer["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["rng"]["cuda"])
    return list(state["losses"])


def _token_id(tokenizer, token: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise AdapterError(f"the tokenizer has no special token {token}")
    return ids[0]


def _row_images(record: dict, root) -> list:
    """The row's images as RGB PIL images; refused (outside the root, not a regular file, too
    large: ``kdsl.data.images``), unreadable or missing files are left out, and no image is read
    without a data root."""
    from PIL import Image

    if root is None:
        return []
    images = []
    for name in record.get("image_paths") or []:
        try:
            with open_image(root, name) as image:
                images.append(image.convert("RGB"))
        except (ImageRejected, OSError, ValueError, Image.DecompressionBombError):
            continue
    return images
