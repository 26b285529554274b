"""A qwen2vl model as two ONNX graphs that onnxruntime runs for label scoring (``kdsl export-onnx``,
``kdsl predict --runtime onnx``). Optimum does not export Qwen2-VL, so the parts are exported here
with torch's dynamo exporter, as modules that take what is data-dependent as inputs:

- ``vision.onnx``: ONE image's ``pixel_values`` float32 [n_patches, 3·2·14·14] and ``patch_positions``
  int64 [n_patches, 2] (each patch's row and column, in the processor's merge order) ->
  ``image_embeds`` [n_patches / 4, hidden]. One image per run, so attention spans the whole input
  (the model's per-image split, a loop over ``grid_thw``, does not export).
- ``decoder.onnx``: ``input_ids`` [1, L], ``image_embeds`` [M, hidden] and ``image_positions`` [M]
  (where they go), ``position_ids`` [3, 1, L] (M-RoPE), ``branches`` [L], ``score_positions`` /
  ``score_tokens`` [N] -> ``logprobs`` [N]: log P(score_tokens[i] | the tokens up to
  score_positions[i]).

Label scoring without a KV cache in one pass: the sequence is the prompt (branch 0) followed by
every label's tokens but its last (branch j + 1), each label's positions continuing after the
prompt; a token sees the prompt and the earlier tokens of its own branch only. That gives the
same numbers as the torch adapter's cached prefix + batched continuations.

Prompts, images and M-RoPE positions are computed here in Python (the tokenizer and image
processor are saved in the export's ``processor/`` folder); torch is still imported for the
prompt plumbing shared with ``Qwen2VLAdapter``, but no torch model is loaded. A LoRA model is
merged into its base before export. The export runs in float32 on the CPU (for a 7B model, ~30 GB
of RAM); a graph over 2 GB goes to external data files beside the ``.onnx``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kdsl.adapters.base import AdapterError
from kdsl.adapters.onnx import ExportedModel, open_session, quiet_export
from kdsl.adapters.qwen2vl import IMAGE_PAD, Prompt, Qwen2VLAdapter, Settings
from kdsl.adapters.storage import write_config
from kdsl.io import atomic_directory

VISION, DECODER, PROCESSOR = "vision.onnx", "decoder.onnx", "processor"
VISION_INPUTS, VISION_OUTPUT = ["pixel_values", "patch_positions"], "image_embeds"
DECODER_INPUTS = ["input_ids", "image_embeds", "image_positions", "position_ids", "branches", "score_positions",
                  "score_tokens"]
DECODER_OUTPUT = "logprobs"


class _Vision(torch.nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual

    def forward(self, pixel_values, patch_positions):
        from transformers.models.qwen2_vl.modeling_qwen2_vl import (
            apply_rotary_pos_emb_vision,
        )

        visual = self.visual
        x = visual.patch_embed(pixel_values)
        n = x.shape[0]
        # rot_pos_emb's table lookup, as a product: position × inverse frequency.
        freqs = (patch_positions[..., None].float() * visual.rotary_pos_emb.inv_freq).flatten(1)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()
        for block in visual.blocks:
            attn = block.attn
            q, k, v = attn.qkv(block.norm1(x)).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
            q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
            out = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], scale=attn.scaling)
            x = x + attn.proj(out[0].transpose(0, 1).reshape(n, -1))
            x = x + block.mlp(block.norm2(x))
        return visual.merger(x)


class _Decoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.text = model.model.language_model
        self.head = model.lm_head

    def forward(self, input_ids, image_embeds, image_positions, position_ids, branches, score_positions,
                score_tokens):
        embeds = self.text.embed_tokens(input_ids)[0]
        embeds = embeds.index_copy(0, image_positions, image_embeds.to(embeds.dtype))[None]
        index = torch.arange(input_ids.shape[1])
        seen = (index[None, :] <= index[:, None]) & ((branches[None, :] == 0) | (branches[None, :] == branches[:, None]))
        bias = torch.zeros(seen.shape, dtype=embeds.dtype).masked_fill(~seen, torch.finfo(embeds.dtype).min)
        # A dict mask is used as given (transformers builds no causal mask over it).
        hidden = self.text(inputs_embeds=embeds, attention_mask={"full_attention": bias[None, None]},
                           position_ids=position_ids, use_cache=False).last_hidden_state[0]
        logprobs = self.head(hidden[score_positions]).float().log_softmax(-1)
        return logprobs.gather(1, score_tokens[:, None])[:, 0]


def patch_positions(grid, merge: int) -> np.ndarray:
    """Each patch's (row, column) for an image of grid (t, h, w), in the order the image
    processor lays patches out (merge × merge blocks together); as ``rot_pos_emb``."""
    t, h, w = (int(v) for v in grid)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    cols = np.broadcast_to(np.arange(w)[None, :], (h, w))
    blocks = [a.reshape(h // merge, merge, w // merge, merge).transpose(0, 2, 1, 3).ravel() for a in (rows, cols)]
    return np.tile(np.stack(blocks, -1), (t, 1)).astype(np.int64)


def rope_positions(ids: list[int], grids, image_token: int, merge: int) -> np.ndarray:
    """M-RoPE position ids [3, len(ids)] of one prompt, as ``get_rope_index`` gives them: text
    advances all three axes together; an image's tokens take (t, row, column) of its merged grid,
    offset by the position before it; the text after it starts past the image's largest."""
    columns, position, i = [], 0, 0
    grids = iter(grids)
    while i < len(ids):
        if ids[i] != image_token:
            columns.append(np.full((3, 1), position))
            position, i = position + 1, i + 1
            continue
        t, h, w = (int(v) for v in next(grids))
        grid = np.indices((t, h // merge, w // merge)).reshape(3, -1) + position
        columns.append(grid)
        position, i = int(grid.max()) + 1, i + grid.shape[1]
    return np.concatenate(columns, 1).astype(np.int64) if columns else np.zeros((3, 0), np.int64)


def export(adapter: Qwen2VLAdapter, output) -> list[str]:
    """Write ``adapter``'s model to ``output`` (atomically) as vision.onnx + decoder.onnx +
    config.json + processor/; the names of the .onnx files."""
    model = adapter.peft.merge_and_unload() if adapter.peft is not None else adapter.model
    # float32 on the CPU: numpy (and so the runtime's feeds) has no bfloat16.
    model = model.to("cpu", torch.float32).eval()
    config = model.config
    merge = config.vision_config.spatial_merge_size
    hidden = config.text_config.hidden_size
    # Example sizes all different and above 1, so that the exporter specialises none of them.
    grid = (1, 2 * merge, 3 * merge)
    patches = int(np.prod(grid))
    vision_example = (torch.rand(patches, adapter.image_processor.temporal_patch_size * 3
                                 * adapter.image_processor.patch_size ** 2, dtype=model.dtype),
                      torch.from_numpy(patch_positions(grid, merge)))
    n, m, k = 11, 3, 5
    decoder_example = (torch.randint(0, 1000, (1, n)), torch.rand(m, hidden, dtype=model.dtype),
                       torch.tensor([2, 3, 4]), torch.arange(n).view(1, 1, -1).expand(3, 1, n).contiguous(),
                       torch.tensor([0] * 7 + [1, 1, 2, 2]), torch.tensor([6, 6, 7, 9, 10]),
                       torch.randint(0, 1000, (k,)))
    auto = torch.export.Dim.AUTO
    vision_shapes = {"pixel_values": {0: auto}, "patch_positions": {0: auto}}
    decoder_shapes = {"input_ids": {1: auto}, "image_embeds": {0: auto}, "image_positions": {0: auto},
                      "position_ids": {2: auto}, "branches": {0: auto}, "score_positions": {0: auto},
                      "score_tokens": {0: auto}}
    with atomic_directory(output) as tmp, torch.no_grad():
        quiet_export(_Vision(model.model.visual).eval(), vision_example, tmp / VISION, VISION_INPUTS,
                     [VISION_OUTPUT], vision_shapes)
        quiet_export(_Decoder(model).eval(), decoder_example, tmp / DECODER, DECODER_INPUTS, [DECODER_OUTPUT],
                     decoder_shapes)
        adapter.tokenizer.save_pretrained(tmp / PROCESSOR)
        adapter.image_processor.save_pretrained(tmp / PROCESSOR)
        write_config(tmp, {"adapter": adapter.name, "runtime": "onnx", "labels": adapter.labels,
                           "settings": asdict(adapter.settings), "processor": PROCESSOR, "vision": VISION,
                           "decoder": DECODER, "hidden_size": hidden, "image_token_id": config.image_token_id,
                           "merge_size": merge})
    return [VISION, DECODER]


class OnnxQwen2VLAdapter(ExportedModel, Qwen2VLAdapter):
    """A qwen2vl export run by onnxruntime: the torch adapter's prompts and label set, scored by
    the two graphs; cannot train or save."""

    def __init__(self, labels, settings, tokenizer, image_processor, vision, decoder, config):
        super().__init__(labels, settings, None, tokenizer, image_processor)
        self.vision, self.decoder = vision, decoder
        self.hidden_size, self.merge = int(config["hidden_size"]), int(config["merge_size"])

    @classmethod
    def export(cls, adapter: Qwen2VLAdapter, output) -> list[str]:
        return export(adapter, output)

    @classmethod
    def load(cls, directory) -> OnnxQwen2VLAdapter:
        from transformers import AutoTokenizer, Qwen2VLImageProcessor

        config = cls.export_config(directory)
        try:
            labels, settings = config["labels"], Settings(**config["settings"])
            processor = Path(directory) / config["processor"]
            vision, decoder = open_session(directory, config["vision"]), open_session(directory, config["decoder"])
        except (KeyError, TypeError) as error:
            raise AdapterError(f"{directory}: config.json is not a qwen2vl ONNX export's ({error})") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(processor, local_files_only=True)
            image_processor = Qwen2VLImageProcessor.from_pretrained(processor, local_files_only=True)
        except (OSError, ValueError) as error:
            raise AdapterError(f"{processor}: no tokenizer and image processor there ({error})") from None
        return cls(labels, settings, tokenizer, image_processor, vision, decoder, config)

    @property
    def providers(self) -> list[str]:
        """The execution providers the decoder session actually uses, most preferred first."""
        return self.decoder.get_providers()

    def label_logprobs(self, prompt: Prompt, continuations: list[list[int]]) -> torch.Tensor:
        ids, image_token = list(prompt.ids), self._special[IMAGE_PAD]
        grids = [] if prompt.image_grid_thw is None else prompt.image_grid_thw.tolist()
        embeds, start = [np.zeros((0, self.hidden_size), np.float32)], 0
        for grid in grids:
            size = int(np.prod(grid))
            pixels = prompt.pixel_values[start:start + size].numpy().astype(np.float32)
            embeds.append(self.vision.run([VISION_OUTPUT], {"pixel_values": pixels,
                                                            "patch_positions": patch_positions(grid, self.merge)})[0])
            start += size
        positions = [rope_positions(ids, grids, image_token, self.merge)]
        after = int(positions[0].max()) + 1
        branches, score_positions, score_tokens, owners = [0] * len(ids), [], [], []
        for j, continuation in enumerate(continuations):
            fed = continuation[:-1]
            offset = len(ids)
            score_positions += [len(prompt.ids) - 1] + [offset + i for i in range(len(fed))]
            score_tokens += continuation
            owners += [j] * len(continuation)
            ids += fed
            branches += [j + 1] * len(fed)
            positions.append(np.broadcast_to(after + np.arange(len(fed)), (3, len(fed))))
        feed = {"input_ids": np.array([ids], np.int64), "image_embeds": np.concatenate(embeds).astype(np.float32),
                "image_positions": np.flatnonzero(np.array(prompt.ids) == image_token).astype(np.int64),
                "position_ids": np.concatenate(positions, 1)[:, None, :].astype(np.int64),
                "branches": np.array(branches, np.int64), "score_positions": np.array(score_positions, np.int64),
                "score_tokens": np.array(score_tokens, np.int64)}
        logprobs = self.decoder.run([DECODER_OUTPUT], feed)[0]
        return torch.from_numpy(np.bincount(owners, weights=logprobs, minlength=len(continuations)))
