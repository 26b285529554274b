"""Commands for the model side: ``train`` a model directory, ``predict`` with it.

    kdsl train train.parquet -o model/ --images data/images --epochs 25 --tasks joint
    kdsl train train.parquet -o model/ --images data/images --adapter qwen2vl \
        --model weights/Qwen2-VL-7B-Instruct --lr 5e-6 --epochs 3 --grad-accum 8 --gradient-checkpointing \
        [--lora --lora-rank 8 --lora-alpha 16] [--resume]
    kdsl train log.parquet -o model/ --adapter precomputed --label-column pred --score-column prob
    kdsl predict dev.parquet -m model/ -o dev.pred.parquet --images data/images
    kdsl export-onnx model/ -o model.onnx/
    kdsl predict dev.parquet -m model.onnx/ --runtime onnx -o dev.pred.parquet --images data/images

``predict`` adds ``model_label``, ``model_score`` and ``model_topk``; ``kdsl score`` then lets
rules override them, and ``kdsl eval`` scores the result.

qwen2vl training writes a checkpoint to ``OUTPUT.checkpoint/`` (beside ``-o OUTPUT``) after every
epoch; an interrupted run continues from it with the same command plus ``--resume``, and the
checkpoint is removed once the model is saved. Without ``--resume`` an existing checkpoint is an
error, so that a restart never silently throws away finished epochs.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import click

from kdsl.cli.common import InputProblem, main, read_parquet
from kdsl.cli.scoring import ray_address_option


@main.command()
@click.argument("input_path", metavar="TRAIN.parquet", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--adapter", "adapter_name", default="baseline", show_default=True,
              help="Which adapter: baseline, precomputed, qwen2vl.")
@click.option("--images", "images_root", default=None, type=click.Path(), metavar="DIR",
              help="The data root that `image_paths` are relative to (without it, images are not used).")
@click.option("--epochs", default=None, type=click.IntRange(1),
              help="Training epochs (baseline: default 25; qwen2vl: default 3).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--tasks", "task_mode", default="joint", show_default=True, type=click.Choice(["joint", "separate"]),
              help="One network for both tasks, or one per task (baseline).")
@click.option("--model", "model_folder", default=None, type=click.Path(), metavar="DIR",
              help="qwen2vl: the LOCAL Qwen2-VL folder to fine-tune (model, tokenizer, image processor).")
@click.option("--lr", "learning_rate", default=None, type=click.FloatRange(min=0, min_open=True),
              help="qwen2vl: AdamW learning rate (default 5e-6).")
@click.option("--grad-accum", "gradient_accumulation", default=None, type=click.IntRange(1),
              help="qwen2vl: rows per optimiser step (default 8).")
@click.option("--gradient-checkpointing", is_flag=True, default=False,
              help="qwen2vl: trade compute for memory while training.")
@click.option("--cutoff", default=None, type=click.IntRange(16),
              help="qwen2vl: most prompt + label tokens (default 1024; the oldest dialogue is cut).")
@click.option("--lora", is_flag=True, default=False,
              help="qwen2vl: train LoRA adapters on the language model instead of every weight; the model "
                   "directory then holds only the adapter and the base folder's path.")
@click.option("--lora-rank", default=None, type=click.IntRange(1), help="qwen2vl --lora: rank (default 8).")
@click.option("--lora-alpha", default=None, type=click.FloatRange(min=0, min_open=True),
              help="qwen2vl --lora: scaling alpha (default 16).")
@click.option("--resume", is_flag=True, default=False,
              help="qwen2vl: continue from OUTPUT.checkpoint/ (written after every epoch) if it is there.")
@click.option("--label-column", default=None, help="precomputed: the column of predicted labels (model_label).")
@click.option("--score-column", default=None, help="precomputed: the column of their probabilities (model_score).")
@click.option("--topk-column", default=None,
              help="precomputed: a list<struct<label, score>> column of the best labels (none by default).")
def train(input_path, output, adapter_name, images_root, epochs, seed, task_mode, model_folder, learning_rate,
          gradient_accumulation, gradient_checkpointing, cutoff, lora, lora_rank, lora_alpha, resume,
          label_column, score_column, topk_column):
    """Train a model on the labelled rows of TRAIN.parquet and save it to a directory."""
    from kdsl.adapters import AdapterError, adapter_class

    columns = {"label_column": label_column, "score_column": score_column, "topk_column": topk_column}
    only = {
        "qwen2vl": {"--model": model_folder, "--lr": learning_rate, "--grad-accum": gradient_accumulation,
                    "--gradient-checkpointing": gradient_checkpointing or None, "--cutoff": cutoff,
                    "--lora": lora or None, "--lora-rank": lora_rank, "--lora-alpha": lora_alpha,
                    "--resume": resume or None},
        "precomputed": _flags(columns),
    }
    for owner, options in only.items():
        given = [name for name, value in options.items() if value is not None]
        if given and adapter_name != owner:
            raise InputProblem(f"{', '.join(given)}: only for --adapter {owner}, not {adapter_name}")
    if adapter_name == "qwen2vl":
        if model_folder is None:
            raise InputProblem("--adapter qwen2vl needs --model DIR, a local Qwen2-VL folder")
        if not Path(model_folder).is_dir():
            raise InputProblem(f"{model_folder}: no such directory (--model must be a local Qwen2-VL folder)")
        if (lora_rank is not None or lora_alpha is not None) and not lora:
            raise InputProblem("--lora-rank, --lora-alpha: only with --lora")
    table = read_parquet(input_path).read()
    if images_root is not None and not Path(images_root).is_dir():
        raise InputProblem(f"{images_root}: no such directory")
    try:
        cls = adapter_class(adapter_name)
        if adapter_name == "qwen2vl":
            checkpoint = checkpoint_path(output)
            options = {"model": model_folder, "images": images_root, "seed": seed,
                       "gradient_checkpointing": gradient_checkpointing, "checkpoint": checkpoint, "resume": resume}
            if lora:
                options["lora_rank"] = lora_rank or 8
            for key, value in (("epochs", epochs), ("learning_rate", learning_rate),
                               ("gradient_accumulation", gradient_accumulation), ("cutoff", cutoff),
                               ("lora_alpha", lora_alpha)):
                if value is not None:
                    options[key] = value
            if images_root is None and "image_paths" in table.column_names:
                click.echo("note: no --images given; the model sees no images", err=True)
            log = (lambda line: click.echo(line, err=True)) if sys.stderr.isatty() else None
            started = time.perf_counter()
            adapter = cls.train(table, log=log, **options)
        elif adapter_name == "baseline":
            options = {"seed": seed, "tasks": task_mode, "images": images_root}
            if epochs is not None:
                options["epochs"] = epochs
            if images_root is None and "image_paths" in table.column_names:
                click.echo("note: no --images given; the image branch sees no images", err=True)
            log = (lambda line: click.echo(line, err=True)) if sys.stderr.isatty() else None
            started = time.perf_counter()
            adapter = cls.train(table, log=log, **options)
        else:
            started = time.perf_counter()
            adapter = cls.train(table, **{key: value for key, value in columns.items() if value is not None})
        adapter.save(output)
    except AdapterError as error:
        raise InputProblem(f"{input_path}: {error}") from None
    if adapter_name == "qwen2vl":
        shutil.rmtree(checkpoint, ignore_errors=True)  # the saved model supersedes it
    labels = ", ".join(f"{task}: {len(names)} labels" for task, names in adapter.labels.items())
    click.echo(f"trained {adapter_name} on {table.num_rows} rows ({labels}) in "
               f"{time.perf_counter() - started:.1f}s -> {output}", err=True)


def checkpoint_path(output) -> Path:
    """Where ``kdsl train -o OUTPUT`` keeps its checkpoint: beside OUTPUT, since OUTPUT itself
    is written whole at the end."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


def _flags(options: dict) -> dict:
    """``{"label_column": v}`` as ``{"--label-column": v}``, for messages naming the options given."""
    return {"--" + key.replace("_", "-"): value for key, value in options.items()}


@main.command()
@click.argument("input_path", metavar="INPUT.parquet", type=click.Path())
@click.option("-m", "--model", "model_dir", required=True, type=click.Path(), help="A model directory from `kdsl train`.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Output Parquet file (with --ray: a directory).")
@click.option("--images", "images_root", default=None, type=click.Path(), metavar="DIR",
              help="The data root that `image_paths` are relative to.")
@click.option("--batch-size", default=4096, show_default=True, type=click.IntRange(1))
@click.option("--runtime", default="torch", show_default=True, type=click.Choice(["torch", "onnx"]),
              help="torch: a model directory from `kdsl train`; onnx: a directory from `kdsl export-onnx`, "
                   "run by onnxruntime (on CUDA when onnxruntime-gpu finds a GPU, else the CPU).")
@click.option("--label-column", default=None, help="precomputed model: read the labels from this column instead.")
@click.option("--score-column", default=None, help="precomputed model: read the probabilities from this column.")
@click.option("--topk-column", default=None, help="precomputed model: read the best labels from this column.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              callback=lambda ctx, param, value: ray_address_option(value),
              help="Predict on Ray: a local one, or the cluster at ADDRESS (--ray=HOST:PORT); each worker loads "
                   "the model once (qwen2vl: on a GPU of its own when the cluster has GPUs). The output is then "
                   "a directory of Parquet files.")
@click.option("--ray-workers", default=None, type=click.IntRange(1),
              help="With --ray: how many workers (model copies) predict (default: as many as the cluster fits).")
def predict(input_path, model_dir, output, images_root, batch_size, runtime, label_column, score_column,
            topk_column, ray_address, ray_workers):
    """Add model_label, model_score and model_topk to every row, streaming batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import kdsl.adapters
    from kdsl.adapters import AdapterError
    from kdsl.io import atomic_path

    if Path(output).resolve() == Path(input_path).resolve():
        raise InputProblem("the output would overwrite the input; choose another -o")
    if images_root is not None and not Path(images_root).is_dir():
        raise InputProblem(f"{images_root}: no such directory")
    columns = {"label_column": label_column, "score_column": score_column, "topk_column": topk_column}
    if ray_address is not None:
        return _predict_on_ray(input_path, model_dir, output, images_root, batch_size, runtime, columns,
                               ray_address, ray_workers)
    if ray_workers is not None:
        raise InputProblem("--ray-workers: only with --ray")
    try:
        adapter = kdsl.adapters.load(model_dir, runtime, columns)
    except AdapterError as error:
        raise InputProblem(str(error)) from None
    if any(value is not None for value in columns.values()) and adapter.name != "precomputed":
        given = [name for name, value in _flags(columns).items() if value is not None]
        raise InputProblem(f"{', '.join(given)}: only for a precomputed model, and {model_dir} is {adapter.name}")
    # A model that knows the intent task reads the dialogue: without a 'user' column every
    # prediction would be made from nothing, silently.
    reads_dialogue = "intent" in adapter.labels and adapter.name != "precomputed"
    source = read_parquet(input_path, require=("user",) if reads_dialogue else ())
    schema = adapter.output_schema(source.schema_arrow)
    rows = 0
    try:
        with atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for batch in source.iter_batches(batch_size=batch_size):
                predicted = adapter.predict(pa.Table.from_batches([batch]), images=images_root)
                writer.write_table(predicted.select(schema.names).cast(schema))
                rows += batch.num_rows
    except AdapterError as error:
        raise InputProblem(f"{input_path}: {error}") from None
    # With onnx, the providers onnxruntime actually uses (CUDA may be asked for and not given).
    engine = f" (onnxruntime: {', '.join(adapter.providers)})" if runtime == "onnx" else ""
    click.echo(f"predicted {rows} rows{engine} -> {output}", err=True)


def _predict_on_ray(input_path, model_dir, output, images_root, batch_size, runtime, columns, address, workers):
    """`kdsl predict --ray`: the model is loaded by the workers only (a large one would not fit
    beside them on the driver), so its directory is checked here from its config."""
    from kdsl.adapters import AdapterError
    from kdsl.adapters.storage import read_config
    from kdsl.scaleout import ScaleOutError, predict_on_ray

    read_parquet(input_path)  # a missing or unreadable input fails here, not in a worker
    try:
        adapter = read_config(model_dir)["adapter"]
    except AdapterError as error:
        raise InputProblem(str(error)) from None
    overrides = {key: value for key, value in columns.items() if value is not None}
    if overrides and adapter != "precomputed":
        raise InputProblem(f"{', '.join(_flags(overrides))}: only for a precomputed model, and {model_dir} is {adapter}")
    try:
        predict_on_ray(input_path, model_dir, output, images=images_root, batch_size=batch_size, runtime=runtime,
                       overrides=overrides, workers=workers, address=address)
    except ScaleOutError as error:
        raise InputProblem(str(error)) from None
    except AdapterError as error:
        raise InputProblem(f"{input_path}: {error}") from None
    click.echo(f"predicted on Ray -> {output}/", err=True)


@main.command("export-onnx")
@click.argument("model_dir", metavar="MODEL_DIR", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Directory to write: the .onnx file(s) and config.json (labels, feature settings).")
def export_onnx(model_dir, output):
    """Export a baseline model directory to ONNX, for `kdsl predict --runtime onnx`."""
    from kdsl.adapters import AdapterError
    from kdsl.adapters.onnx_export import export

    if Path(output).resolve() == Path(model_dir).resolve():
        raise InputProblem("the export would replace the model; choose another -o")
    started = time.perf_counter()
    try:
        files = export(model_dir, output)
    except AdapterError as error:
        raise InputProblem(str(error)) from None
    click.echo(f"exported {model_dir} to ONNX ({', '.join(files)}) in {time.perf_counter() - started:.1f}s "
               f"-> {output}", err=True)
