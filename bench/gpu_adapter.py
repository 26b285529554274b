"""Qwen2-VL-7B on one GPU, random weights: kdsl's one-forward label scoring vs generate(), a full
fine-tuning step and a LoRA step. Self-contained (torch + transformers, and peft for the LoRA
step; no download, no kdsl import).

    python bench/gpu_adapter.py --out bench/gpu_adapter.md            # on the GPU machine, a few minutes
    python bench/gpu_adapter.py --tiny --out /tmp/tiny.md             # CPU smoke test, seconds

Works with transformers 4.57 and 5.x: ``mm_token_type_ids`` is passed only where the model's
forward takes it, ``bos/eos/pad`` ids go in both the top config and ``text_config``.

Label scoring is kdsl's method (kdsl/adapters/qwen2vl.py ``label_logprobs``): the prompt runs once
with the KV cache on; the cache is repeated once per label and all 23 labels (their tokens +
``<|im_end|>``, fed right-padded) run together from it, with rope positions continuing after the
prompt. For a batch of samples the prompts run together in chunks of ``--label-chunk`` samples
(chunk × 23 label rows share one forward).
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import time

import torch
import transformers
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

# Qwen2-VL token ids
BOS = PAD = 151643
IM_END = 151645
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = 151652, 151653, 151655, 151656


def build_config(tiny: bool) -> tuple[Qwen2VLConfig, dict]:
    if tiny:
        ids = {"bos": 1, "eos": 2, "pad": 1, "vs": 3, "ve": 4, "img": 5, "vid": 6}
        text = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "intermediate_size": 128, "vocab_size": 1000, "rope_theta": 1e6,
                "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
        vision = {"depth": 1, "embed_dim": 32, "num_heads": 2, "hidden_size": 64}
    else:  # Qwen2-VL-7B-Instruct's config.json
        ids = {"bos": BOS, "eos": IM_END, "pad": PAD, "vs": VISION_START, "ve": VISION_END, "img": IMAGE_PAD,
               "vid": VIDEO_PAD}
        text = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                "intermediate_size": 18944, "vocab_size": 152064, "rope_theta": 1e6, "max_position_embeddings": 32768,
                "rms_norm_eps": 1e-6, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}}
        vision = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "hidden_size": 3584, "mlp_ratio": 4}
    vision.update({"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3})
    special = {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"]}
    config = Qwen2VLConfig(text_config={**text, **special, "tie_word_embeddings": False}, vision_config=vision,
                           image_token_id=ids["img"], video_token_id=ids["vid"],
                           vision_start_token_id=ids["vs"], vision_end_token_id=ids["ve"],
                           tie_word_embeddings=False, attn_implementation="sdpa", **special)
    return config, ids


def build_model(config, device, dtype):
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen2VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("sdpa")
        except Exception as error:  # noqa: BLE001 - an older API; the config already asks for sdpa
            print(f"note: set_attn_implementation failed ({error})", flush=True)
    return model.to(device=device, dtype=dtype).eval()


class Inputs:
    """One sample's prompt: text, one image (grid t=1, h, w patches), more text, the assistant header."""

    def __init__(self, ids, prompt_tokens, image_side, vocab, generator):
        self.ids = ids
        patches = image_side // 14
        self.grid = torch.tensor([[1, patches, patches]])
        self.n_image = patches * patches // 4
        self.pixels_per_image = patches * patches
        special = set(ids.values())
        n_text = max(prompt_tokens - self.n_image - 2, 8)
        head = n_text // 5
        self.vocab = vocab
        self.generator = generator
        self.layout = (head, n_text - head)
        self.special = special

    def _text(self, n):
        t = torch.randint(10, self.vocab - 10, (n,), generator=self.generator)
        for s in self.special:
            t[t == s] = 7
        return t.tolist()

    def batch(self, b, device, dtype):
        rows = []
        for _ in range(b):
            head, tail = self.layout
            rows.append(self._text(head) + [self.ids["vs"]] + [self.ids["img"]] * self.n_image + [self.ids["ve"]]
                        + self._text(tail))
        input_ids = torch.tensor(rows, device=device)
        pixel_values = torch.randn(b * self.pixels_per_image, 3 * 2 * 14 * 14, generator=self.generator)
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                "pixel_values": pixel_values.to(device, dtype), "image_grid_thw": self.grid.repeat(b, 1).to(device)}

    def next_position(self):
        """Rope position after the prompt (Qwen2-VL mrope): text advances by 1 a token, the image
        by max(t, h/2, w/2) over all its tokens."""
        head, tail = self.layout
        side = int(self.grid[0, 1]) // 2
        return head + 1 + side + 1 + tail


def accepts(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def mm_types(model, inputs, image_id):
    if accepts(model.forward, "mm_token_type_ids") or accepts(model.model.forward, "mm_token_type_ids"):
        return {"mm_token_type_ids": (inputs == image_id).long()}
    return {}


def repeat_cache(cache, k):
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(k)
        return cache
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            layer.keys = layer.keys.repeat_interleave(k, dim=0)
            layer.values = layer.values.repeat_interleave(k, dim=0)
        return cache
    return tuple((key.repeat_interleave(k, 0), value.repeat_interleave(k, 0)) for key, value in cache)


@torch.no_grad()
def score_labels(model, batch, continuations, start, ids):
    """kdsl's cached-prefix label scoring for every sample of ``batch``: (samples, labels) log-probs."""
    device = batch["input_ids"].device
    b, length = batch["input_ids"].shape
    extra = mm_types(model, batch["input_ids"], ids["img"])
    if accepts(model.forward, "logits_to_keep"):
        extra["logits_to_keep"] = 1
    out = model(**batch, use_cache=True, **extra)
    first = out.logits[:, -1].float().log_softmax(-1)  # (b, vocab)
    k, longest = len(continuations), max(len(c) for c in continuations)
    scores = torch.stack([first[:, c[0]] for c in continuations], 1)  # (b, k)
    feed = torch.tensor([c[:-1] + [ids["pad"]] * (longest - len(c)) for c in continuations], device=device)
    feed = feed.repeat(b, 1)  # sample-major: row s*k + j is sample s, label j
    positions = (start + torch.arange(longest - 1, device=device)).view(1, 1, -1).expand(3, b * k, -1)
    cache = repeat_cache(out.past_key_values, k)
    extra = {"mm_token_type_ids": torch.zeros_like(feed)} if "mm_token_type_ids" in mm_types(model, feed, -1) else {}
    logits = model(input_ids=feed, attention_mask=torch.ones(b * k, length + longest - 1, device=device,
                                                             dtype=torch.long),
                   position_ids=positions, past_key_values=cache, use_cache=True, **extra).logits.float()
    logprobs = logits.log_softmax(-1).view(b, k, longest - 1, -1)
    for j, c in enumerate(continuations):
        if len(c) > 1:
            targets = torch.tensor(c[1:], device=device)
            scores[:, j] += logprobs[:, j, :len(c) - 1].gather(-1, targets.view(1, -1, 1).expand(b, -1, 1)).sum((1, 2))
    return scores


@torch.no_grad()
def generate(model, batch, new_tokens, ids):
    out = model.generate(**batch, **mm_types(model, batch["input_ids"], ids["img"]), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, pad_token_id=ids["pad"],
                         eos_token_id=ids["eos"])
    assert out.shape[1] - batch["input_ids"].shape[1] == new_tokens
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up
    sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - started) / repeats


def is_oom(error):
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def free(device):
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="Markdown file to write")
    parser.add_argument("--tiny", action="store_true", help="tiny config on the CPU (smoke test)")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,16,64; tiny: 1)")
    parser.add_argument("--prompt-tokens", type=int, default=None, help="prompt length (default 950; tiny 64)")
    parser.add_argument("--image-side", type=int, default=None, help="image side in pixels (448; tiny 56)")
    parser.add_argument("--labels", type=int, default=23)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--label-chunk", type=int, default=16, help="samples per label-scoring forward")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3; tiny 1)")
    parser.add_argument("--no-train", action="store_true", help="skip the fine-tuning steps")
    parser.add_argument("--no-lora", action="store_true", help="skip the LoRA step (needs peft)")
    args = parser.parse_args()

    tiny = args.tiny
    device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batches = [int(b) for b in (args.batches or ("1" if tiny else "1,16,64")).split(",")]
    prompt_tokens = args.prompt_tokens or (64 if tiny else 950)
    image_side = args.image_side or (56 if tiny else 448)
    repeats = args.repeats or (1 if tiny else 3)

    config, ids = build_config(tiny)
    started = time.perf_counter()
    model = build_model(config, device, dtype)
    build_s = time.perf_counter() - started
    vocab = config.text_config.vocab_size if hasattr(config, "text_config") else config.vocab_size
    generator = torch.Generator().manual_seed(0)
    sample = Inputs(ids, prompt_tokens, image_side, vocab, generator)
    continuations = [torch.randint(10, vocab - 10, (int(n),), generator=generator).tolist() + [ids["eos"]]
                     for n in torch.randint(1, 8, (args.labels,), generator=generator)]
    start = sample.next_position()
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    params = sum(p.numel() for p in model.parameters())
    attn = getattr(model.config, "_attn_implementation", "?")
    print(f"{card}; torch {torch.__version__}, transformers {transformers.__version__}; {params / 1e9:.3g}B "
          f"params, {dtype}, attention {attn}; built in {build_s:.1f}s", flush=True)

    # the cached rope start must equal what the model computes itself for the prompt
    one = sample.batch(1, device, dtype)
    if hasattr(model.model, "get_rope_index"):
        try:
            kwargs = {"input_ids": one["input_ids"], "image_grid_thw": one["image_grid_thw"],
                      "attention_mask": one["attention_mask"]}
            if accepts(model.model.get_rope_index, "mm_token_type_ids"):
                kwargs.update(mm_types(model, one["input_ids"], ids["img"]))
            positions, _ = model.model.get_rope_index(**kwargs)
            assert int(positions.max()) + 1 == start, (int(positions.max()) + 1, start)
        except (TypeError, ValueError) as error:
            print(f"note: get_rope_index not checked ({error})", flush=True)
    total_len = one["input_ids"].shape[1]

    rows = []
    for b in batches:
        row = {"batch": b}
        try:
            chunk = min(b, args.label_chunk)
            data = [sample.batch(chunk, device, dtype) for _ in range(b // chunk)]
            if b % chunk:
                data.append(sample.batch(b % chunk, device, dtype))
            seconds = timed(lambda data=data: [score_labels(model, d, continuations, start, ids) for d in data], device, repeats)
            row["score"] = b / seconds
        except RuntimeError as error:
            if not is_oom(error):
                raise
            row["score"] = None
        data = None
        free(device)
        try:
            full = sample.batch(b, device, dtype)
            seconds = timed(lambda full=full: generate(model, full, args.new_tokens, ids), device, repeats)
            row["generate"] = b / seconds
        except RuntimeError as error:
            if not is_oom(error):
                raise
            row["generate"] = None
        full = None
        free(device)
        print(f"batch {b}: label scoring {row['score']}, generate {row['generate']} samples/s", flush=True)
        rows.append(row)

    train, lora = None, None
    if not args.no_train:
        model.train()
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        batch = sample.batch(1, device, dtype)
        label = torch.tensor([continuations[0]], device=device)
        batch["input_ids"] = torch.cat([batch["input_ids"], label], 1)
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        targets = batch["input_ids"].clone()
        targets[:, :total_len] = -100
        extra = mm_types(model, batch["input_ids"], ids["img"])

        def step_timing(learning_rate):
            """(seconds per AdamW step over the trainable weights, peak GiB or None), or "OOM"."""
            optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)

            def step():
                loss = model(**batch, **extra, labels=targets, use_cache=False).loss
                loss.backward()
                optimiser.step()
                optimiser.zero_grad(set_to_none=True)
                return loss

            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                seconds = timed(step, device, max(1, repeats - 1))
                return seconds, torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
            except RuntimeError as error:
                if not is_oom(error):
                    raise
                return "OOM"
            finally:
                del optimiser
                free(device)

        train = step_timing(5e-6)
        print(f"fine-tuning step: {train}", flush=True)
        if not args.no_lora:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                print("note: peft is not installed; no LoRA step", flush=True)
            else:
                # kdsl's LoRA (kdsl/adapters/qwen2vl.py): rank 8, alpha 16, the language model's projections.
                get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=[
                    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
                lora = step_timing(1e-4)
                print(f"LoRA step: {lora}", flush=True)

    def fmt(v):
        return "OOM" if v is None else f"{v:.1f}" if v >= 1 else f"{v:.3f}"

    lines = [
        f"### Qwen2-VL {'TINY (smoke test)' if tiny else '7B'} on {card}, {datetime.date.today().isoformat()}",
        "",
        (f"torch {torch.__version__}, transformers {transformers.__version__}; {params / 1e9:.3g}B parameters, random "
         f"weights, {str(dtype).replace('torch.', '')}, attention `{attn}`. One {image_side}×{image_side} image "
         f"({sample.n_image} image tokens) in a {total_len}-token prompt; {args.labels} labels of 2–8 tokens "
         f"(with `<|im_end|>`); mean of {repeats} timed run(s) after one warm-up."),
        "",
        (f"| batch | label scoring, one forward + cached labels (samples/s) | `generate()` {args.new_tokens} tokens "
         "(samples/s) |"),
        "|---:|---:|---:|",
        *[f"| {r['batch']} | {fmt(r['score'])} | {fmt(r['generate'])} |" for r in rows],
        "",
    ]
    for what, result in (("full fine-tuning step (AdamW lr 5e-6", train),
                         ("LoRA step (rank 8, alpha 16, AdamW lr 1e-4", lora)):
        if result == "OOM":
            lines.append(f"One {what}, gradient checkpointing, batch 1): out of memory.")
        elif result is not None:
            peak = f", peak {result[1]:.1f} GiB allocated" if result[1] is not None else ""
            lines.append(f"One {what}, gradient checkpointing, batch 1, "
                         f"{total_len + len(continuations[0])} tokens): {result[0]:.2f} s{peak}.")
    lines.append(f"Label scoring runs {min(max(batches), args.label_chunk)} samples × {args.labels} labels per "
                 "forward (`--label-chunk`).")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
