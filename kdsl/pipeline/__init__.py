"""``kdsl pipeline CONFIG.toml``: import → OCR → mine → train (with and without flips) → predict →
score with the mined rules → evaluate → the seesaw check → ``report.md``, each step's artefact in
one output folder.

A step is skipped on a rerun when its inputs did not change: the content hashes of its input
files plus its config section, stored per step in ``OUTPUT/.steps.json``, and its outputs exist.

    output = "run"                # relative paths are relative to the config file
    [data]
    train = "train.json"          # challenge JSON (or train_table = "train.parquet", a record table)
    dev = "dev.json"              # (or dev_table = "dev.parquet")
    images = "images"             # optional: the folder image_paths are relative to
    [ocr]
    enabled = false
    [mining]
    tasks = ["intent"]            # one rule file per task: rules/intent.kdsl, rules/scene.kdsl
    proposer = "ngram"            # or "llm" with llm_model = "path/to/a/local/causal-lm"
    seed = 0
    max_predicates = 5
    min_reward = 0.8
    select_folds = 3              # k-fold baseline predictions on train (train.oof.parquet): mined
                                  # rules with net rows fixed > 0 on them are kept; 0 keeps all
    model_aware = false           # mine against those out-of-fold predictions
    [model]
    adapter = "baseline"          # or "qwen2vl" with base = "path/to/Qwen2-VL-7B-Instruct" (its model option)
    epochs = 25
    seed = 0
    options = {}                  # passed to the adapter's training (e.g. learning_rate = 5e-6)
    [seesaw]
    seeds = [0, 1, 2]             # baseline trained jointly and separately per seed; [] skips it
"""

from kdsl.pipeline.config import PipelineError, load_config
from kdsl.pipeline.runner import run

__all__ = ["PipelineError", "load_config", "run"]
