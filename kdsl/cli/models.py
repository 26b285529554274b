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

from kdsl.cli.common import main
from kdsl.cli.scoring import ray_address_option
from kdsl.errors import InputError, context
from kdsl.io import open_parquet, read_parquet


class AdapterCommand(click.Command):
    """A command whose adapter flags are derived from what the adapters declare (``Adapter.options``,
    or ``load_options`` with ``loading``). They are added on first use, so that other commands
    (and ``kdsl --help``) do not import the adapters, and with them torch."""

    def __init__(self, *args, loading: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.loading = loading
        self.derived = False

    def get_params(self, ctx):
        from kdsl.adapters import declared_options

        if not self.derived:
            self.derived = True
            self.params.extend(_click_option(option, help_text)
                               for option, _, help_text in declared_options(self.loading))
        return super().get_params(ctx)


def _click_option(option, help_text: str) -> click.Option:
    kind = option.kind
    settings: dict = {"default": None, "help": help_text[:1].upper() + help_text[1:] + "."}
    if kind is bool:
        settings.update(is_flag=True, default=False)
    elif kind == "dir":
        settings.update(type=click.Path(), metavar="DIR")
    elif isinstance(kind, tuple):
        settings.update(type=click.Choice(kind))
    elif kind in (int, float) and option.minimum is not None:
        bounds = click.IntRange if kind is int else click.FloatRange
        settings.update(type=bounds(min=option.minimum, min_open=option.above) if kind is float
                        else bounds(min=option.minimum + option.above))
    else:
        settings.update(type=kind)
    return click.Option([option.cli_flag, option.name], **settings)


@main.command(cls=AdapterCommand)
@click.argument("input_path", metavar="TRAIN.parquet", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--adapter", "adapter_name", default="baseline", show_default=True,
              help="Which adapter: baseline, precomputed, qwen2vl.")
@click.option("--images", "images_root", default=None, type=click.Path(), metavar="DIR",
              help="The data root that `image_paths` are relative to (without it, images are not used).")
def train(input_path, output, adapter_name, images_root, **given):
    """Train a model on the labelled rows of TRAIN.parquet and save it to a directory. The
    other options belong to one adapter or another (each says which)."""
    import kdsl.adapters

    cls = kdsl.adapters.adapter_class(adapter_name)
    options = _train_options(cls, given)
    table = read_parquet(input_path)
    if images_root is not None and not Path(images_root).is_dir():
        raise InputError(f"{images_root}: no such directory")
    if cls.reads_images and images_root is None and "image_paths" in table.column_names:
        click.echo("note: no --images given; the model sees no images", err=True)
    if cls.keeps_checkpoint:
        options["checkpoint"] = checkpoint_path(output)
    log = (lambda line: click.echo(line, err=True)) if sys.stderr.isatty() else None
    started = time.perf_counter()
    with context(input_path):
        adapter = kdsl.adapters.train(adapter_name, table, images=images_root, log=log, **options)
    adapter.save(output)
    if cls.keeps_checkpoint:
        shutil.rmtree(options["checkpoint"], ignore_errors=True)  # the saved model supersedes it
    labels = ", ".join(f"{task}: {len(names)} labels" for task, names in adapter.labels.items())
    click.echo(f"trained {adapter_name} on {table.num_rows} rows ({labels}) in "
               f"{time.perf_counter() - started:.1f}s -> {output}", err=True)


def _train_options(cls, given: dict) -> dict:
    """The adapter flags given, as ``cls.train``'s options; InputError for a flag of another
    adapter, a required one missing, or one given without the flag it goes with."""
    from kdsl.adapters import declared_options

    declared = {option.name: option for option in cls.options}
    flags = {option.name: option.cli_flag for option, _, _ in declared_options()}
    owners = {option.name: names for option, names, _ in declared_options()}
    present = {name: value for name, value in given.items() if value is not None and value is not False}
    foreign = [name for name in present if name not in declared]
    if foreign:
        others = sorted({owner for name in foreign for owner in owners[name]})
        raise InputError(f"{', '.join(flags[n] for n in foreign)}: only for --adapter {' or '.join(others)}, "
                         f"not {cls.name}")
    for option in cls.options:
        if option.required and option.name not in present:
            raise InputError(f"--adapter {cls.name} needs {option.cli_flag} DIR ({option.help})")
        if option.kind == "dir" and option.name in present and not Path(present[option.name]).is_dir():
            raise InputError(f"{present[option.name]}: no such directory ({option.cli_flag} must be {option.help})")
        if option.requires and option.name in present and option.requires not in present:
            dependent = [o.cli_flag for o in cls.options if o.requires == option.requires]
            raise InputError(f"{', '.join(dependent)}: only with {declared[option.requires].cli_flag}")
    return present


def checkpoint_path(output) -> Path:
    """Where ``kdsl train -o OUTPUT`` keeps its checkpoint: beside OUTPUT, since OUTPUT itself
    is written whole at the end."""
    output = Path(output)
    return output.with_name(output.name + ".checkpoint")


@main.command(cls=AdapterCommand, loading=True)
@click.argument("input_path", metavar="INPUT.parquet", type=click.Path())
@click.option("-m", "--model", "model_dir", required=True, type=click.Path(), help="A model directory from `kdsl train`.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Output Parquet file (with --ray: a directory).")
@click.option("--images", "images_root", default=None, type=click.Path(), metavar="DIR",
              help="The data root that `image_paths` are relative to.")
@click.option("--batch-size", default=4096, show_default=True, type=click.IntRange(1))
@click.option("--runtime", default="torch", show_default=True, type=click.Choice(["torch", "onnx"]),
              help="torch: a model directory from `kdsl train`; onnx: a directory from `kdsl export-onnx`, "
                   "run by onnxruntime (on CUDA when onnxruntime-gpu finds a GPU, else the CPU).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              callback=lambda ctx, param, value: ray_address_option(value),
              help="Predict on Ray: a local one, or the cluster at ADDRESS (--ray=HOST:PORT); each worker loads "
                   "the model once (qwen2vl: on a GPU of its own when the cluster has GPUs). The output is then "
                   "a directory of Parquet files.")
@click.option("--ray-workers", default=None, type=click.IntRange(1),
              help="With --ray: how many workers (model copies) predict (default: as many as the cluster fits).")
def predict(input_path, model_dir, output, images_root, batch_size, runtime, ray_address, ray_workers, **given):
    """Add model_label, model_score and model_topk to every row, streaming batches. The other
    options are settings of a loaded model of one adapter or another (each says which)."""
    import kdsl.adapters
    from kdsl.adapters.storage import read_config
    from kdsl.batch import predict_parquet

    if images_root is not None and not Path(images_root).is_dir():
        raise InputError(f"{images_root}: no such directory")
    overrides = {key: value for key, value in given.items() if value is not None}
    if ray_address is None and ray_workers is not None:
        raise InputError("--ray-workers: only with --ray")
    # Checked from the config alone: with --ray, the model is loaded by the workers only.
    _check_overrides(kdsl.adapters.adapter_class(read_config(model_dir)["adapter"]), overrides, model_dir)
    if ray_address is not None:
        return _predict_on_ray(input_path, model_dir, output, images_root, batch_size, runtime, overrides,
                               ray_address, ray_workers)
    adapter = kdsl.adapters.load(model_dir, runtime, overrides)
    rows = predict_parquet(adapter, input_path, output, images=images_root, batch_size=batch_size)
    # With onnx, the providers onnxruntime actually uses (CUDA may be asked for and not given).
    engine = f" (onnxruntime: {', '.join(adapter.providers)})" if runtime == "onnx" else ""
    click.echo(f"predicted {rows} rows{engine} -> {output}", err=True)


def _check_overrides(cls, overrides: dict, model_dir) -> None:
    """InputError for a setting that a model of ``cls`` does not take, naming the adapters that do."""
    from kdsl.adapters import declared_options

    foreign = [name for name in overrides if name not in cls.load_options]
    if foreign:
        found = declared_options(loading=True)
        flags = {option.name: option.cli_flag for option, _, _ in found}
        owners = sorted({owner for option, names, _ in found if option.name in foreign for owner in names})
        raise InputError(f"{', '.join(flags[n] for n in foreign)}: only for a {' or '.join(owners)} model, "
                         f"and {model_dir} is {cls.name}")


def _predict_on_ray(input_path, model_dir, output, images_root, batch_size, runtime, overrides, address, workers):
    """`kdsl predict --ray`: the model is loaded by the workers only (a large one would not fit
    beside them on the driver)."""
    from kdsl.scaleout import predict_on_ray

    open_parquet(input_path)  # a missing or unreadable input fails here, not in a worker
    with context(input_path):
        predict_on_ray(input_path, model_dir, output, images=images_root, batch_size=batch_size, runtime=runtime,
                       overrides=overrides, workers=workers, address=address)
    click.echo(f"predicted on Ray -> {output}/", err=True)


@main.command("export-onnx")
@click.argument("model_dir", metavar="MODEL_DIR", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Directory to write: the .onnx file(s) and config.json (labels, feature settings).")
def export_onnx(model_dir, output):
    """Export a baseline or qwen2vl model directory to ONNX, for `kdsl predict --runtime onnx`."""
    from kdsl.adapters import export

    if Path(output).resolve() == Path(model_dir).resolve():
        raise InputError("the export would replace the model; choose another -o")
    started = time.perf_counter()
    files = export(model_dir, output)
    click.echo(f"exported {model_dir} to ONNX ({', '.join(files)}) in {time.perf_counter() - started:.1f}s "
               f"-> {output}", err=True)
