"""``kdsl mine``: rules mined from labelled rows, written as a checked ``.kdsl`` file."""

import sys

import click

from kdsl.cli.common import main
from kdsl.errors import InputError, context
from kdsl.io import read_parquet


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
    from kdsl.mining.miner import PROPOSERS, MiningConfig
    from kdsl.mining.miner import mine as mine_rules
    from kdsl.mining.miner import proposer as make_proposer
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
    llm = make_proposer(proposer, task, model, max_new_tokens)
    from kdsl.engine import COMPILE_NOTE, kernels_compiled

    if not kernels_compiled():  # rules are validated with the engine: its first use compiles it
        click.echo(COMPILE_NOTE, err=True)
    labels = sorted({r["label"] for r in rows})
    with _progress(len(labels)) as bar:
        result = mine_rules(rows, task, config, validation=held, progress=lambda label: bar.update(1),
                            proposer=llm)
    write(output, task, result.labels, result.rules)
    click.echo(summary_table(result))
    click.echo(f"wrote {len(result.rules)} rules for {len(result.labels)} labels -> {output}")


def _labelled_rows(path, task) -> list[dict]:
    """The rows of ``task`` that have a label, with their text fields."""
    from kdsl.mining.miner import training_rows

    with context(path):
        return training_rows(read_parquet(path), task)


def _progress(total):
    """A tqdm bar on a terminal; elsewhere a bar that draws nothing."""
    from tqdm import tqdm

    return tqdm(total=total, desc="mining", unit="label", disable=not sys.stderr.isatty())


def summary_table(result) -> str:
    """Per label: rules kept, training rows, their coverage, and how the rules did held out."""
    from kdsl.text_table import text_table

    header = ["label", "rules", "train rows", "coverage", "held-out matched", "held-out precision"]
    return text_table([header] + [
        [s.label, str(s.rules), str(s.training_rows), f"{s.coverage:.2f}", str(s.held_out_fired),
         "-" if s.held_out_precision is None else f"{s.held_out_precision:.2f}"] for s in result.summary])
