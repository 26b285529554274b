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
def score(input_path, rule_paths, output, keep, threads, batch_size, ray_address, ray_workers):
    """Score a Parquet file with rules, streaming record batches (bounded memory)."""
    from tqdm import tqdm

    from kdsl.batch import score_parquet

    if ray_workers is not None and ray_address is None:
        raise InputError("--ray-workers: only with --ray")
    engine = load_engine(rule_paths)
    kept = None if keep is None else [c.strip() for c in keep.split(",") if c.strip()]
    total = open_parquet(input_path).metadata.num_rows
    with tqdm(total=total, unit="rows", disable=ray_address is not None or not sys.stderr.isatty()) as bar:
        rows = score_parquet(engine, input_path, output, keep=kept, threads=threads, batch_size=batch_size,
                             ray=ray_address, workers=ray_workers, progress=bar.update)
    where = f"on Ray -> {output}/" if ray_address is not None else f"-> {output}"
    click.echo(f"scored {rows} rows {where}", err=True)


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
@click.option("--id", "row_id", required=True, help="The id of the row to explain.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain(input_path, rule_paths, row_id, as_json):
    """Show every rule that matches one row, the deciding rule first, with matched literals."""
    import pyarrow.compute as pc

    engine = load_engine(rule_paths)
    source = open_parquet(input_path)
    if "id" not in source.schema_arrow.names:
        raise InputError(f"{input_path}: no 'id' column")
    columns = [c for c in source.schema_arrow.names if c in engine.fields or c == "id"]
    record = None
    for batch in source.iter_batches(columns=columns):
        found = batch.filter(pc.equal(batch.column("id"), row_id))
        if found.num_rows:
            record = found.to_pylist()[0]
            break
    if record is None:
        raise InputError(f"{input_path}: no row with id {row_id!r}")
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


@main.command()
@click.argument("rule_paths", metavar="RULES", nargs=-1, required=True, type=click.Path())
@click.option("-d", "--data", required=True, type=click.Path(), help="Labelled Parquet data.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(rule_paths, data, as_json):
    """Per rule: coverage, precision against `label`, overlaps and conflicts, rows decided."""
    from kdsl.engine.stats import rule_stats

    engine = load_engine(rule_paths)
    source = open_parquet(data)
    columns = [c for c in source.schema_arrow.names if c in engine.fields or c == "label"]
    with context(data):
        rows = rule_stats(engine, source.read(columns=columns))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    click.echo(_table(rows))


def _table(rows) -> str:
    header = ["rule", "target", "label", "coverage", "rows", "overlaps", "conflicts", "correct",
              "incorrect", "precision", "wins"]

    def cell(row, key):
        value = row[key]
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    cells = [header] + [[cell(r, k) for k in header] for r in rows]
    from kdsl.dsl.errors import cell_width

    def width(text):
        return sum(cell_width(ch) for ch in text)

    widths = [max(width(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c + " " * (w - width(c)) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
