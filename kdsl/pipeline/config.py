"""The pipeline's config file: ``load_config`` reads the TOML, checks every key and value
against ``SCHEMA`` (plus the ``[model]`` keys the adapters declare) and fills in the defaults;
see ``kdsl.pipeline`` for the file itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

from kdsl.errors import ConfigError
from kdsl.record import TASKS

# section -> {key: (types, default)}
SCHEMA: dict[str, dict[str, tuple]] = {
    "data": {"train": ((str,), None), "dev": ((str,), None), "train_table": ((str,), None),
             "dev_table": ((str,), None), "images": ((str,), None)},
    "ocr": {"enabled": ((bool,), False)},
    "mining": {"tasks": ((list,), ["intent"]), "proposer": ((str,), "ngram"), "llm_model": ((str,), None),
               "seed": ((int,), 0), "max_predicates": ((int,), 5), "min_reward": ((int, float), 0.8),
               "select_folds": ((int,), 3), "model_aware": ((bool,), False)},
    "model": {"adapter": ((str,), "baseline"), "epochs": ((int,), 25), "seed": ((int,), 0),
              "options": ((dict,), {})},  # + the adapters' own keys (Option.config_key), see _schema
    "seesaw": {"seeds": ((list,), [0, 1, 2]), "epochs": ((int,), None)},
}
TOP_LEVEL = {"output"} | set(SCHEMA)


def _schema() -> dict[str, dict[str, tuple]]:
    """``SCHEMA`` with the ``[model]`` keys the adapters declare (e.g. qwen2vl's ``base``)."""
    from kdsl.adapters import adapter_classes

    keyed = {option.config_key: ((str,), None) for cls in adapter_classes() for option in cls.options
             if option.config_key}
    return {**SCHEMA, "model": {**SCHEMA["model"], **keyed}}


class PipelineError(ConfigError):
    """A config or input the pipeline cannot use; the message says which and why."""


def load_config(path) -> dict:
    """The validated config: every section with its defaults filled in, paths made absolute
    (relative ones are taken from the config file's folder)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise PipelineError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise PipelineError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_LEVEL))}")
    if "output" not in raw:
        raise PipelineError(f"{path}: missing key 'output' (the folder to write into)")
    if not isinstance(raw["output"], str):
        raise PipelineError(f"{path}: 'output' must be a string")
    base = path.parent
    config: dict = {"output": str((base / raw["output"]).resolve())}
    for section, keys in _schema().items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise PipelineError(f"{path}: [{section}] must be a table")
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise PipelineError(f"{path}: unknown key(s) in [{section}]: {', '.join(unknown)}; "
                                f"known: {', '.join(keys)}")
        values = {}
        for key, (types, default) in keys.items():
            value = given.get(key, default)
            if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
                names = " or ".join({"list": "an array", "dict": "a table"}.get(t.__name__, t.__name__) for t in types)
                raise PipelineError(f"{path}: [{section}] {key} must be {names}, not {value!r}")
            values[key] = value
        config[section] = values
    _check_values(config, path)
    return config


def _check_values(config: dict, path: Path) -> None:
    def fail(message: str):
        raise PipelineError(f"{path}: {message}")

    base = path.parent
    data, mining, model, seesaw = config["data"], config["mining"], config["model"], config["seesaw"]
    for split in ("train", "dev"):
        if (data[split] is None) == (data[f"{split}_table"] is None):
            fail(f"[data] needs exactly one of '{split}' (challenge JSON) or '{split}_table' (record-table Parquet)")
    for key in ("train", "dev", "train_table", "dev_table", "images"):
        if data[key] is not None:
            data[key] = str((base / data[key]).resolve())
            target = Path(data[key])
            if key == "images" and not target.is_dir():
                fail(f"[data] images: no such folder {target}")
            if key != "images" and not target.is_file():
                fail(f"[data] {key}: no such file {target}")
    if config["ocr"]["enabled"] and data["images"] is None:
        fail("[ocr] enabled needs [data] images")
    tasks = mining["tasks"]
    if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
        fail(f"[mining] tasks must be a non-empty array of distinct tasks among {', '.join(TASKS)}, not {tasks!r}")
    from kdsl.mining.miner import PROPOSERS

    if mining["proposer"] not in PROPOSERS:
        fail(f"[mining] proposer must be one of {', '.join(PROPOSERS)}, not {mining['proposer']!r}")
    if (mining["proposer"] == "llm") != (mining["llm_model"] is not None):
        fail("[mining] llm_model (a local model folder) goes with proposer = \"llm\", and only with it")
    if mining["llm_model"] is not None:
        mining["llm_model"] = str((base / mining["llm_model"]).resolve())
    if not 1 <= mining["max_predicates"] <= 20:
        fail("[mining] max_predicates must be between 1 and 20")
    if not 0 <= mining["min_reward"] <= 1:
        fail("[mining] min_reward must be between 0 and 1")
    if mining["select_folds"] != 0 and mining["select_folds"] < 2:
        fail("[mining] select_folds must be 0 (keep every task's rules) or at least 2")
    if mining["model_aware"] and mining["select_folds"] == 0:
        fail("[mining] model_aware mines against out-of-fold predictions: select_folds must be at least 2")
    from kdsl.adapters import adapter_classes

    learning = [cls for cls in adapter_classes() if cls.learns]  # a precomputed model has nothing to train
    if model["adapter"] not in [cls.name for cls in learning]:
        fail(f"[model] adapter must be one of {', '.join(cls.name for cls in learning)}, not {model['adapter']!r}")
    for cls in learning:
        for option in (o for o in cls.options if o.config_key):
            key = option.config_key
            if (model["adapter"] == cls.name and option.required) != (model[key] is not None):
                fail(f"[model] {key} ({option.help}) goes with adapter = \"{cls.name}\", and only with it")
            if model[key] is not None and option.kind == "dir":
                model[key] = str((base / model[key]).resolve())
                if not Path(model[key]).is_dir():
                    fail(f"[model] {key}: no such folder {model[key]}")
    if model["epochs"] < 1:
        fail("[model] epochs must be at least 1")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seesaw["seeds"]):
        fail(f"[seesaw] seeds must be an array of integers, not {seesaw['seeds']!r}")
    if seesaw["epochs"] is None:
        seesaw["epochs"] = model["epochs"] if model["adapter"] == "baseline" else SCHEMA["model"]["epochs"][1]
    elif seesaw["epochs"] < 1:
        fail("[seesaw] epochs must be at least 1")
