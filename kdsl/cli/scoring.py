"""Commands over data: score, explain, stats, demo."""

import json
import sys
from pathlib import Path

import click

from kdsl.cli.common import load_engine, main
from kdsl.errors import InputError, context
from kdsl.io import open_parquet


@main.command()
@click.argument("input_path", metavar="INPUT.parquet", type=click.Path())
@click.option("-r", "--rules", "rule_paths", multiple=True, required=True, type=click.Path(),
              help="A .kdsl file or a directory of them (repeatable).")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output Parquet file (with --ray: a directory of them).")
@click.option("--keep", default=None, help="Comma-separated input columns to copy to the output "
              "(default: all). Only these and the columns the rules read are read.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--batch-size", default=65536, show_default=True, type=click.IntRange(1))
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              callback=lambda ctx, param, value: ray_address_option(value),
              help="Score on Ray: a local one, or the cluster at ADDRESS (--ray=HOST:PORT). "
                   "The output is then a directory of Parquet files.")
@click.option("--ray-workers", default=None, type=click.IntRange(1),
              help="With --ray: how many workers score (default: as many as the cluster fits).")
@click.option("--profile", "profile_rows", is_flag=False, flag_value=65536, default=None, type=click.IntRange(1),
              metavar="[ROWS]", help="Also profile the rules on the first ROWS rows (default 65536): time per "
              "rule in literal scanning and condition checks, the slowest rules, the hottest atoms.")
def score(input_path, rule_paths, output, keep, threads, batch_size, ray_address, ray_workers, profile_rows):
    """Score a Parquet file with rules, streaming record batches (bounded memory)."""
    from tqdm import tqdm

    from kdsl.batch import score_parquet

    if ray_workers is not None and ray_address is None:
        raise InputError("--ray-workers: only with --ray")
    if ray_address is not None and profile_rows is not None:
        raise InputError("--profile: not with --ray (profile on one machine)")
    engine = load_engine(rule_paths)
    kept = None if keep is None else [c.strip() for c in keep.split(",") if c.strip()]
    total = open_parquet(input_path).metadata.num_rows
    from kdsl.engine import COMPILE_NOTE, kernels_compiled

    if ray_address is None and not kernels_compiled():
        click.echo(COMPILE_NOTE, err=True)
    with tqdm(total=total, unit="rows", disable=ray_address is not None or not sys.stderr.isatty()) as bar:
        rows = score_parquet(engine, input_path, output, keep=kept, threads=threads, batch_size=batch_size,
                             ray=ray_address, workers=ray_workers, progress=bar.update)
    where = f"on Ray -> {output}/" if ray_address is not None else f"-> {output}"
    click.echo(f"scored {rows} rows {where}", err=True)
    if profile_rows is not None:
        from kdsl.engine.profile import profile, render_profile

        source = open_parquet(input_path)
        columns = [c for c in source.schema_arrow.names if c in engine.fields]
        sample = next(iter(source.iter_batches(batch_size=profile_rows, columns=columns)), None)
        if sample is not None:
            with context(input_path):
                click.echo(render_profile(profile(engine, sample, rows=profile_rows)))


def ray_address_option(value):
    """``--ray`` takes an optional value, so ``--ray IN.parquet`` would read the input as the
    cluster's address: say so rather than fail to connect to it."""
    if value and Path(value).exists():
        raise click.BadParameter(f"{value!r} is a file, not a Ray address; put --ray after the input "
                                 "or write --ray=ADDRESS", param_hint="--ray")
    return value


@main.command()
@click.argument("input_path", metavar="INPUT.parquet", type=click.Path())
@click.option("-r", "--rules", "rule_paths", multiple=True, required=True, type=click.Path())
@click.option("--id", "row_id", default=None, help="The id of the row to explain.")
@click.option("--find", default=None, metavar="TEXT",
              help="Instead of explaining: list the ids of rows whose user, agent or ocr text contains TEXT.")
@click.option("--label", default=None, help="Instead of explaining: list the ids of rows with this label.")
@click.option("--why-not", "why_not", is_flag=True,
              help="Explain the rules of the row's label (or --rule) that do not match it.")
@click.option("--rule", "rule_name", default=None, help="With --why-not: explain this rule only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain(input_path, rule_paths, row_id, find, label, why_not, rule_name, as_json):
    """Show every rule that matches one row, the deciding rule first, with matched literals;
    with --why-not, why the rules of its label do not match and the edit that would fix each.
    Without --id, --find and --label list the ids of matching rows (with their text) to choose one."""
    import pyarrow.compute as pc

    if rule_name is not None and not why_not:
        raise InputError("--rule: only with --why-not")
    engine = load_engine(rule_paths)
    source = open_parquet(input_path, require=("id",))
    if row_id is None:
        if find is None and label is None:
            raise InputError("give --id ID, or --find TEXT / --label LABEL to list the ids of matching rows")
        _list_ids(source, input_path, find, label)
        return
    columns = [c for c in source.schema_arrow.names if c in engine.fields or c in ("id", "label")]
    found = [batch.filter(pc.equal(batch.column("id"), row_id)) for batch in source.iter_batches(columns=columns)]
    records = [record for batch in found for record in batch.to_pylist()]
    if not records:
        raise InputError(f"{input_path}: no row with id {row_id!r} (--find TEXT lists ids)")
    if len(records) > 1:
        raise InputError(f"{input_path}: {len(records)} rows have id {row_id!r}; ids must be unique to explain a row")
    record = records[0]
    if why_not:
        with context(f"{input_path}: row {row_id!r}"):
            misses = engine.explain(record, why_not=True, rule=rule_name)
        if as_json:
            click.echo(json.dumps({"id": row_id, "label": record.get("label"), "why_not": misses},
                                  ensure_ascii=False, indent=2))
            return
        _echo_misses(record, rule_name, misses)
        return
    matches = engine.explain(record)
    outputs = engine.predict(record)
    if as_json:
        click.echo(json.dumps({"id": row_id, "outputs": outputs, "matches": matches}, ensure_ascii=False, indent=2))
        return
    for target in engine.targets:
        click.echo(f"{target}: {outputs[target]!s}  (source: {outputs[f'{target}_source']}, rule: {outputs[f'{target}_rule']})")
    if not matches:
        click.echo("no rule matches")
    for m in matches:
        mark = "*" if m["winner"] else " "
        click.echo(f"{mark} {m['rule']} -> {m['target']} = {m['label']}  (priority {m['priority']}, {m['location']})")
        for hit in m["matches"]:
            click.echo(f"      {hit['field']}[{hit['start']}:{hit['end']}] {hit['literal']!r}")


def _echo_misses(record, rule_name, misses):
    subject = f"rule {rule_name}" if rule_name else f"rules of label {record.get('label')!r}"
    if not misses:
        click.echo(f"every {subject} matches this row" if not rule_name else f"{subject} matches this row")
        return
    for miss in misses:
        click.echo(f"{miss['rule']} -> {miss['target']} = {miss['label']}  ({miss['location']})")
        click.echo(f"  first failed term: {miss['term']}  ({miss['term_location']})")
        click.echo(f"  found: {miss['found']}")
        for edit in miss["edits"]:
            click.echo(f"  edit:  {edit}")
        verdict = "fires" if miss["fires_after_edit"] else "still does not fire"
        click.echo(f"  after the edit{'s' if miss['failed_terms'] > 1 else ''} ({verdict}): {miss['condition_after_edit']}")


def _list_ids(source, input_path, text, label, shown=20):
    from kdsl.batch import find_rows

    with context(input_path):
        rows, total = find_rows(source, text=text, label=label, limit=shown)
    if not rows:
        raise InputError(f"{input_path}: no row matches")
    for row in rows:
        click.echo(f"{row['id']}\t{row.get('label') or '-'}\t{row['text']}")
    if total > len(rows):
        click.echo(f"... {total - len(rows)} more rows match", err=True)


@main.command()
@click.argument("rule_paths", metavar="RULES", nargs=-1, required=True, type=click.Path())
@click.option("-d", "--data", required=True, type=click.Path(), help="Labelled Parquet data.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (rules, matrix, errors, noise).")
@click.option("--errors", default=0, show_default=True, type=click.IntRange(0),
              help="Show up to N wrong rows per rule.")
@click.option("--plot", type=click.Path(), default=None, help="Write the rule x rule overlap heatmap (PNG).")
@click.option("--noise-rules", default=2, show_default=True, type=click.IntRange(1),
              help="Label-noise candidates: rows where at least this many precise rules agree.")
@click.option("--noise-precision", default=0.9, show_default=True, type=click.FloatRange(0, 1),
              help="The precision a rule needs to count as precise.")
def stats(rule_paths, data, as_json, errors, plot, noise_rules, noise_precision):
    """The rule base on labelled data: per rule coverage, precision, overlaps, conflicts and rows
    decided; the rule x rule overlap/conflict matrix; wrong rows; label-noise candidates."""
    from kdsl.engine.stats import render_rule_base, rule_base_stats

    engine = load_engine(rule_paths)
    source = open_parquet(data)
    columns = [c for c in source.schema_arrow.names if c in engine.fields or c in ("label", "id", "user")]
    with context(data):
        report = rule_base_stats(engine, source.read(columns=columns), errors=errors,
                                 noise_rules=noise_rules, noise_precision=noise_precision)
    if plot:
        from kdsl.engine.stats import overlap_block
        from kdsl.plots import write_overlap_png

        shown, overlap, conflict = overlap_block(report, max_rules=60)
        names = [report["matrix"]["names"][i] for i in shown]
        write_overlap_png(names, overlap, conflict, f"rules sharing rows, {data}", plot)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    click.echo(_table(report["rules"]))
    click.echo("")
    click.echo(render_rule_base(report))


def _table(rows) -> str:
    header = ["rule", "target", "label", "coverage", "rows", "overlaps", "conflicts", "correct",
              "incorrect", "precision", "wins"]

    def cell(row, key):
        value = row[key]
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    from kdsl.text_table import text_table

    return text_table([header] + [[cell(r, k) for k in header] for r in rows], right=range(3, len(header)))
