"""Candidate predicates proposed by a local language model (``kdsl mine --proposer llm``).

For each label, a prompt shows a handful of the label's training rows and a handful of rows of
its most confusable labels (counter-examples), and asks for kdsl predicates, one per line, each
optionally followed by a self-assessed confidence as a comment::

    user has "漏水"  # 0.9
    not user has "排水"  # 0.6
    user has any("漏水", "渗水")  # 0.8

The model (a local folder: ``AutoModelForCausalLM.from_pretrained(PATH, local_files_only=True)``
and its tokenizer; Qwen2-VL / Qwen2.5-VL checkpoints load with their ``...ForConditionalGeneration``
class and are prompted with text only) generates greedily, at most ``max_new_tokens`` tokens, so
the same model and rows give the same proposals. Every line is wrapped as
``rule r: TASK = "LABEL" when LINE``, parsed and checked with ``kdsl.dsl``; a line that fails, that
smuggles in anything but a condition, or whose predicate matches none of the label's training rows
is dropped. The survivors become ``LlmCandidate``s, scored on the training rows exactly as the
n-gram candidates are (support, precision, Wilson lower bound).

Merge, not replace: ``merge`` puts a label's LLM candidates first and then its n-gram candidates
(duplicates once), so a label for which the model proposed nothing valid is searched over its
n-gram candidates alone, the n-gram fallback.

Confidence blend: with weight ``w`` (``--llm-confidence-weight``, default 0: no effect), the
reward of a mined rule becomes ``(1 - w) * reward + w * c``, ``c`` the mean self-assessed
confidence of the rule's LLM-proposed predicates that stated one; a rule with none keeps its
reward. The blend applies after the search, to the rewards that ``--min-reward``, the filters and
the priorities use; it does not steer the MCTS itself.

Parsing needs no model:

    >>> [(c.text, c.confidence) for c, _ in parse_proposals('user has "漏水"  # 0.9\\nuser has (', "漏水")]
    [('user has "漏水"', 0.9)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kdsl.dsl import RuleError, ast, check, parse
from kdsl.errors import DependencyError
from kdsl.mining.candidates import Candidate, ngrams
from kdsl.mining.confidence import wilson_lower_bound
from kdsl.record import TEXT_FIELDS


class LlmUnavailable(DependencyError):
    """The model cannot be used: transformers missing, or the folder is not a loadable model."""


@dataclass(frozen=True)
class LlmCandidate(Candidate):
    """A ``Candidate`` proposed by the model, with its self-assessed ``confidence`` (0 to 1,
    ``None`` when it stated none)."""

    source: str = "llm"
    confidence: float | None = None


@dataclass(frozen=True)
class LlmConfig:
    max_new_tokens: int = 128
    examples: int = 8  # training rows of the label in the prompt
    counter_examples: int = 8  # rows of its confusable labels
    confusable: int = 2  # labels the counter-examples come from
    max_chars: int = 60  # of each row's text in the prompt
    max_proposals: int = 20  # valid predicates kept per label


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)、])\s*")
_CONFIDENCE = re.compile(r"#\s*(?:confidence\s*[:=]?\s*)?([01](?:\.\d+)?)\s*$", re.IGNORECASE)
_VL_CLASSES = {"qwen2_vl": "Qwen2VLForConditionalGeneration",
               "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}


def parse_proposals(text: str, label: str, task: str = "intent") -> list[tuple[LlmCandidate, str]]:
    """The valid predicates of the model's ``text``, one per line, in order, without repeats, each
    with the line it came from. Scores are left at 0 (``score_candidates`` fills them in)."""
    found, seen = [], set()
    for raw in text.splitlines():
        line = _BULLET.sub("", raw.strip().strip("`")).strip()
        if not line or line.startswith("#"):
            continue
        condition = _condition(line, label, task)
        if condition is None or condition in seen:
            continue
        seen.add(condition)
        confidence = _CONFIDENCE.search(line)
        value = float(confidence.group(1)) if confidence else None
        found.append((LlmCandidate(label, condition, 0, 0.0, 0.0,
                                   confidence=value if value is None or value <= 1 else None), line))
    return found


def _condition(line: str, label: str, task: str) -> ast.Condition | None:
    """The condition of ``line`` if ``rule r: TASK = "LABEL" when LINE`` parses and checks and
    the line added nothing but the condition; else None."""
    quoted = '"' + label.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        program = parse(f"rule r: {task} = {quoted} when {line}", "<llm>")
        check([program])
    except RuleError:
        return None
    rules = [s for s in program.statements if isinstance(s, ast.Rule)]
    if len(program.statements) != 1 or len(rules) != 1:
        return None
    rule = rules[0]
    if rule.priority or rule.meta or rule.examples or rule.counterexamples or rule.condition is None:
        return None
    return rule.condition


def score_candidates(candidates: list[LlmCandidate], rows: list[dict], task: str) -> list[LlmCandidate]:
    """``candidates`` with support, precision and score measured on ``rows`` (as in
    ``kdsl.mining.candidates``: for a ``not`` form, support counts the other labels' rows it
    excludes and precision the share of the label's rows it keeps); those matching none of their
    label's rows are dropped."""
    from dataclasses import replace

    from kdsl.mining.bitsets import predicate_bits

    if not candidates:
        return []
    bits = predicate_bits([c.predicate for c in candidates], rows, task)
    everything = (1 << len(rows)) - 1
    scored = []
    for candidate, matched in zip(candidates, bits):
        own = sum(1 << i for i, r in enumerate(rows) if r["label"] == candidate.label)
        support = (matched & own).bit_count()
        if not support:
            continue
        if isinstance(candidate.predicate, ast.Not):
            excluded = (everything & ~matched & ~own).bit_count()
            kept = support / own.bit_count()
            scored.append(replace(candidate, support=excluded, precision=kept,
                                  score=wilson_lower_bound(excluded, max(excluded, 1)) * kept))
        else:
            fired = matched.bit_count()
            scored.append(replace(candidate, support=support, precision=support / fired,
                                  score=wilson_lower_bound(support, fired)))
    return scored


def confusable_labels(rows: list[dict], label: str, count: int) -> list[str]:
    """The ``count`` labels whose rows' n-grams overlap most with ``label``'s (Jaccard)."""
    grams: dict[str, set] = {}
    for row in rows:
        grams.setdefault(row["label"], set()).update(
            (f, g) for f in TEXT_FIELDS for g in ngrams(row.get(f), sizes=(2,)))
    mine = grams.get(label, set())
    overlaps = sorted((-len(mine & theirs) / (len(mine | theirs) or 1), other)
                      for other, theirs in grams.items() if other != label)
    return [other for overlap, other in overlaps[:count] if overlap < 0]


def build_prompt(label: str, examples: list[dict], counter_examples: list[dict],
                 max_chars: int = 60) -> str:
    """The instruction for one label: its rows, the confusable rows, the syntax, the format."""
    def show(row):
        return "; ".join(f"{f}: {str(row[f]).replace(chr(10), ' ')[:max_chars]}"
                         for f in TEXT_FIELDS if row.get(f))

    lines = [f"任务：为电商客服意图标签「{label}」写出识别规则的条件（kdsl 语法）。",
             f"属于「{label}」的例子："]
    lines += [f"- {show(r)}" for r in examples]
    lines += ["不属于它、容易混淆的例子："]
    lines += [f"- {show(r)} （标签：{r['label']}）" for r in counter_examples]
    lines += ["每行写一个条件，可用的写法：",
              'user has "漏水"', 'not user has "排水"', 'user has any("漏水", "渗水")',
              'agent has "退款"', 'ocr has "订单"',
              "每行末尾可写 # 后跟 0 到 1 的把握，例如：", 'user has "漏水"  # 0.9',
              "条件：", ""]
    return "\n".join(lines)


class LlmProposer:
    """A local causal LM proposing candidate predicates; call it as a pipeline ``proposer``."""

    def __init__(self, model_dir, config: LlmConfig = LlmConfig(), task: str = "intent"):
        self.config = config
        self.task = task
        self.model, self.tokenizer = load_model(model_dir)
        self.last_texts: dict[str, str] = {}  # label -> generated text, for inspection

    def generate(self, prompt: str) -> str:
        """Greedy continuation of ``prompt``, at most ``max_new_tokens`` tokens (deterministic)."""
        import torch

        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                add_generation_prompt=True, return_tensors="pt")
        else:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=self.config.max_new_tokens, do_sample=False,
                                      num_beams=1, pad_token_id=pad)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def prompt_for(self, rows: list[dict], label: str) -> str:
        cfg = self.config
        own = [r for r in rows if r["label"] == label][: cfg.examples]
        others = confusable_labels(rows, label, cfg.confusable)
        counter = [r for r in rows if r["label"] in others][: cfg.counter_examples]
        return build_prompt(label, own, counter, cfg.max_chars)

    def propose(self, rows: list[dict]) -> dict[str, list[LlmCandidate]]:
        """The valid, scored proposals of every label of ``rows`` (possibly none for a label)."""
        proposals = {}
        for label in sorted({r["label"] for r in rows}):
            text = self.generate(self.prompt_for(rows, label))
            self.last_texts[label] = text
            parsed = [c for c, _ in parse_proposals(text, label, self.task)]
            proposals[label] = score_candidates(parsed, rows, self.task)[: self.config.max_proposals]
        return proposals

    def __call__(self, rows: list[dict], ngram: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
        return merge(self.propose(rows), ngram)


def merge(llm: dict[str, list[Candidate]], ngram: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
    """Per label, the LLM candidates, then the n-gram candidates with a predicate not already
    there: a label with no valid LLM proposal keeps exactly its n-gram candidates."""
    merged = {}
    for label in sorted(set(llm) | set(ngram)):
        chosen = list(llm.get(label, ()))
        seen = {c.predicate for c in chosen}
        chosen += [c for c in ngram.get(label, ()) if c.predicate not in seen]
        merged[label] = chosen
    return merged


def blend_reward(reward: float, candidates, weight: float) -> float:
    """``(1 - weight) * reward + weight * c``, ``c`` the mean stated confidence of the LLM
    candidates among ``candidates``; ``reward`` unchanged when weight is 0 or none stated one."""
    stated = [c.confidence for c in candidates if getattr(c, "confidence", None) is not None]
    if not weight or not stated:
        return reward
    return (1 - weight) * reward + weight * sum(stated) / len(stated)


def load_model(model_dir):
    """The model and tokenizer of the local folder ``model_dir`` (never downloads); raises
    ``LlmUnavailable`` with a readable reason."""
    path = Path(model_dir)
    if not path.is_dir():
        raise LlmUnavailable(f"{model_dir}: not a folder (the llm proposer needs a local model folder)")
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as error:
        raise LlmUnavailable(f"the llm proposer needs transformers and torch ({error}); "
                             "pip install 'transformers==4.57.6' torch") from None
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        vl_class = _VL_CLASSES.get(getattr(config, "model_type", ""))
        loader = getattr(transformers, vl_class) if vl_class else transformers.AutoModelForCausalLM
        model = loader.from_pretrained(path, local_files_only=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise LlmUnavailable(f"{model_dir}: cannot load a model and tokenizer from it ({error})") from None
    model.eval()
    return model, tokenizer
