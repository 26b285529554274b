"""``kdsl mine``: rules mined from labelled rows, written as a checked ``.kdsl`` file."""

import sys

import click

from kdsl.cli.common import main
from kdsl.errors import InputError
from kdsl.io import read_parquet
from kdsl.record import MINING_COLUMNS, TEXT_FIELDS

PROPOSERS = ("ngram", "llm")  # llm: a local model proposes predicates, merged with the n-gram ones


@main.command()
@click.argument("train", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The .kdsl file to write.")
@click.option("--task", default="intent", show_default=True, help="Mine the rows of this task (intent or scene).")
@click.option("--validation", type=click.Path(), help="Labelled rows to validate on (else a share of TRAIN is held out).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-predicates", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option("--min-reward", default=0.8, show_default=True, type=click.FloatRange(0, 1))
@click.option("--top-k", default=40, show_default=True, type=click.IntRange(1), help="Candidate predicates per label.")
@click.option("--iterations", default=300, show_default=True, type=click.IntRange(1), help="MCTS iterations per label.")
@click.option("--words/--no-words", default=True, show_default=True,
              help="Only n-grams that cut no jieba word, plus longer words, are candidates (--no-words: every n-gram).")
@click.option("--proposer", default="ngram", show_default=True,
              help="Where candidate predicates come from: 'ngram', or 'llm' (a local model, see --model; "
                   "its proposals are merged with the n-gram candidates).")
@click.option("--model", type=click.Path(), help="With --proposer llm: a local causal LM folder (transformers).")
@click.option("--max-new-tokens", default=128, show_default=True, type=click.IntRange(1),
              help="With --proposer llm: tokens generated per label (greedy).")
@click.option("--llm-confidence-weight", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="With --proposer llm: weight of the model's self-assessed confidence in a rule's reward.")
def mine(train, output, task, validation, seed, max_predicates, min_reward, top_k, iterations, words, proposer,
         model, max_new_tokens, llm_confidence_weight):
    """Mine rules for TRAIN's rows of one task (MCTS over word and n-gram predicates) into a .kdsl
    file. Scene rows need their screenshots' text first: run `kdsl ocr` on TRAIN."""
    from kdsl.mining.pipeline import MiningConfig
    from kdsl.mining.pipeline import mine as mine_rules
    from kdsl.mining.writer import write

    if proposer not in PROPOSERS:
        raise InputError(f"unknown --proposer '{proposer}'; available: {', '.join(PROPOSERS)}")
    if proposer == "llm" and not model:
        raise InputError("--proposer llm needs --model PATH (a local model folder)")
    if model and proposer != "llm":
        raise InputError("--model is only used with --proposer llm")
    rows = _labelled_rows(train, task)
    held = _labelled_rows(validation, task) if validation else None
    config = MiningConfig(seed=seed, max_predicates=max_predicates, min_reward=min_reward,
                          top_k=top_k, iterations=iterations, proposal_weight=llm_confidence_weight, words=words)
    llm = _llm_proposer(model, max_new_tokens, task) if proposer == "llm" else None
    from kdsl.engine import COMPILE_NOTE, kernels_compiled

    if not kernels_compiled():  # rules are validated with the engine: its first use compiles it
        click.echo(COMPILE_NOTE, err=True)
    labels = sorted({r["label"] for r in rows})
    with _progress(len(labels)) as bar:
        result = mine_rules(rows, task, config, validation=held, progress=lambda label: bar.update(1),
                            proposer=llm)
    write(output, task, result.labels, result.rules)
    _print_summary(result)
    click.echo(f"wrote {len(result.rules)} rules for {len(result.labels)} labels -> {output}")


def _llm_proposer(model, max_new_tokens, task):
    from kdsl.mining.llm_proposer import LlmConfig, LlmProposer

    return LlmProposer(model, LlmConfig(max_new_tokens=max_new_tokens), task=task)


def _labelled_rows(path, task) -> list[dict]:
    """The rows of ``task`` that have a label, with their text fields."""
    table = read_parquet(path)
    if "label" not in table.schema.names:
        raise InputError(f"{path}: no 'label' column; mining needs labelled rows")
    if not any(f in table.schema.names for f in TEXT_FIELDS):
        raise InputError(f"{path}: no text column (user, agent or ocr) to mine")
    columns = [c for c in MINING_COLUMNS if c in table.schema.names]
    rows = [r for r in table.select(columns).to_pylist()
            if r["label"] is not None and r.get("task", task) == task]
    if not rows:
        raise InputError(f"{path}: no labelled rows of task '{task}'")
    return rows


def _progress(total):
    """A tqdm bar on a terminal; elsewhere a bar that draws nothing."""
    from tqdm import tqdm

    return tqdm(total=total, desc="mining", unit="label", disable=not sys.stderr.isatty())


def _print_summary(result) -> None:
    width = max([len(s.label) for s in result.summary] + [5])
    click.echo(f"{'label':<{width}}  rules  train rows  coverage  held-out matched  held-out precision")
    for s in result.summary:
        precision = "-" if s.held_out_precision is None else f"{s.held_out_precision:.2f}"
        click.echo(f"{s.label:<{width}}  {s.rules:>5}  {s.training_rows:>10}  {s.coverage:>8.2f}  "
                   f"{s.held_out_fired:>16}  {precision:>18}")
