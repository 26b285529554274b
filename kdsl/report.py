"""The pipeline's ``report.md``: the paper's ablation table (with its bar chart), how much the
rule engine changed, the rules that changed the most predictions, the seesaw check and the
confusion matrices. ``kdsl.pipeline`` gathers the numbers; this module only presents them.

    >>> print(ablation_table({"variants": {v: {"report": {"scores": {
    ...     "model": {"DIS": 0.5, "ISS": 0.25, "OSS": 0.375}}}} for v in ("flip", "noflip")}}))
    | setting | DIS | ISS | OSS |
    |---|---:|---:|---:|
    | model alone | 0.5000 | 0.2500 | 0.3750 |
    | + augmentation | 0.5000 | 0.2500 | 0.3750 |
    | + rule engine | 0.5000 | 0.2500 | 0.3750 |
    | both = KDSL | 0.5000 | 0.2500 | 0.3750 |
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from kdsl.record import LABEL, MODEL_LABEL, SCORE_OF_TASK, SCORES, TASK

ABLATION = (  # row name, model variant, prediction (evaluate's "model" or "final")
    ("model alone", "noflip", "model"),
    ("+ augmentation", "flip", "model"),
    ("+ rule engine", "noflip", "final"),
    ("both = KDSL", "flip", "final"),
)


def ablation_scores(results: dict) -> dict[str, dict]:
    """{setting: {DIS, ISS, OSS}} for the four settings of ``ABLATION``."""
    out = {}
    for name, variant, prediction in ABLATION:
        scores = results["variants"][variant]["report"]["scores"]
        out[name] = scores.get(prediction) or scores["model"]  # no rules mined: the model's answer stands
    return out


def ablation_table(results: dict) -> str:
    """The ablation as a Markdown table (also what ``kdsl demo`` prints)."""
    lines = ["| setting | " + " | ".join(SCORES) + " |", "|---|" + "---:|" * len(SCORES)]
    for name, scores in ablation_scores(results).items():
        lines.append(f"| {name} | " + " | ".join(_number(scores.get(s)) for s in SCORES) + " |")
    return "\n".join(lines)


def rule_gains(results: dict) -> list[str]:
    """Sentences saying by how much the rule engine moved each score, with and without flips."""
    scores = ablation_scores(results)
    lines = []
    for base, ruled in (("model alone", "+ rule engine"), ("+ augmentation", "both = KDSL")):
        parts = []
        for score in SCORES:
            before, after = scores[base].get(score), scores[ruled].get(score)
            if before is not None and after is not None:
                parts.append(f"{score} {before:.4f} → {after:.4f} ({after - before:+.4f})")
        if parts:
            lines.append(f"The rule engine over **{base}**: " + ", ".join(parts) + ".")
    return lines


def rule_changes(table, task: str) -> list[dict]:
    """Per rule that decided a row of ``task``: rows decided, predictions it changed (its label
    differs from ``model_label``), correct decisions and precision; most changes first."""
    names = table.column_names
    if f"{task}_rule" not in names:
        return []
    counts: dict[str, dict] = {}
    for row in table.select([c for c in (TASK, LABEL, MODEL_LABEL, task, f"{task}_rule", f"{task}_source")
                             if c in names]).to_pylist():
        if row.get("task", task) != task or row[f"{task}_source"] != "rule":
            continue
        cell = counts.setdefault(row[f"{task}_rule"], {"rule": row[f"{task}_rule"], "task": task, "label": row[task],
                                                       "decided": 0, "changed": 0, "fixed": 0, "broke": 0,
                                                       "correct": 0, "labelled": 0})
        cell["decided"] += 1
        changed = row[task] != row.get(MODEL_LABEL)
        cell["changed"] += changed
        if row.get("label") is not None:
            cell["labelled"] += 1
            cell["correct"] += row[task] == row["label"]
            cell["fixed"] += changed and row[task] == row["label"]
            cell["broke"] += changed and row.get(MODEL_LABEL) == row["label"]
    for cell in counts.values():
        cell["precision"] = cell["correct"] / cell["labelled"] if cell["labelled"] else None
    return sorted(counts.values(), key=lambda c: (-c["changed"], -c["decided"], c["rule"]))


def seesaw_table(seesaw: dict) -> list[str]:
    """Joint vs separate training, per task score: mean ± standard deviation over the seeds."""
    runs = seesaw["runs"]
    if not runs:
        return ["Skipped ([seesaw] seeds is empty)."]
    seeds = sorted({r["seed"] for r in runs})
    lines = [f"The baseline trained on both tasks at once (joint) or one network per task (separate), "
             f"{seesaw['epochs']} epochs with flips, seeds {', '.join(map(str, seeds))}; "
             "dev F1, mean ± standard deviation over the seeds.", "",
             "| training | " + " | ".join(SCORES) + " | per seed (DIS / ISS) |", "|---|" + "---:|" * len(SCORES) + "---|"]
    means = {}
    for mode in ("joint", "separate"):
        mine = [r for r in runs if r["tasks"] == mode]
        cells = []
        for score in SCORES:
            values = [r["scores"][score] for r in mine if r["scores"].get(score) is not None]
            means[mode, score] = statistics.fmean(values) if values else None
            spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
            cells.append(f"{means[mode, score]:.4f}{spread}" if values else "-")
        per_seed = "; ".join(f"{_number(r['scores'].get('DIS'))} / {_number(r['scores'].get('ISS'))}" for r in mine)
        lines.append(f"| {mode} | " + " | ".join(cells) + f" | {per_seed} |")
    deltas = [f"{s} {means['joint', s] - means['separate', s]:+.4f}" for s in SCORE_OF_TASK.values()
              if means["joint", s] is not None and means["separate", s] is not None]
    if deltas:
        lines += ["", "Joint minus separate: " + ", ".join(deltas) + ". A task that loses when trained "
                  "jointly while the other gains is the seesaw the paper's Figure 1 describes."]
    return lines


def selection_table(selection: dict) -> list[str]:
    """Which tasks' rules the scoring used, and the cross-validation on train that chose them."""
    if not selection["folds"]:
        return [f"Every mined task's rules are used ([mining] select_folds = 0): {', '.join(selection['kept'])}."]
    lines = [f"{selection['folds']}-fold cross-validation on the training rows (the baseline trained on the "
             "other folds predicts each held-out fold): each mined rule is kept when it fixes more held-out "
             "rows than it breaks, summed over the folds; a task's rules are used when one is kept.", "",
             "| rules of | score | model, per fold | with the kept rules | mean gain | rules kept | used |",
             "|---|---|---|---|---:|---:|---|"]
    for task, cell in selection["tasks"].items():
        per_fold = " / ".join(_number(v) for v in cell["model"])
        ruled = " / ".join(_number(v) for v in cell["rules"])
        kept = f"{len(cell.get('kept_rules', []))} of {len(cell.get('rule_net', {}))}"
        lines.append(f"| {task} | {cell['score']} | {per_fold} | {ruled} | {cell['gain']:+.4f} | {kept} | "
                     f"{'yes' if cell['kept'] else 'no'} |")
    return lines


def render_report(results: dict, seesaw: dict, figures: dict[str, str], selection: dict | None = None,
                  top: int = 10) -> str:
    """``report.md``. ``figures``: {"ablation" | "confusion <prediction> <task>": relative path};
    ``selection``: the pipeline's choice of rule sets (``selection.json``)."""
    lines = ["# KDSL pipeline report", "", "## Ablation (dev, class-weighted F1)", "", ablation_table(results), ""]
    lines += [line + "\n" for line in rule_gains(results)]
    rows = results["variants"]["flip"]["report"]["rows"]
    tasks = ", ".join(f"{n} {t}" for t, n in rows["by_task"].items())
    used = f"; used for {', '.join(selection['kept']) or 'no task'} (see Rule sets used)" if selection else ""
    lines.append(f"{rows['labelled']} labelled dev rows ({tasks}); rules mined for "
                 f"{', '.join(results['tasks'])}{used}.")
    if "ablation" in figures:
        lines += ["", f"![ablation]({figures['ablation']})"]
    lines += ["", "## Rules that changed the most predictions (KDSL)", ""]
    changes = results["variants"]["flip"]["rules"]
    changes = sorted(changes, key=lambda c: (-c["changed"], -c["decided"], c["rule"]))[:top]
    if not changes:
        lines.append("No rule decided a dev row.")
    else:
        lines += ["| rule | task | label | changed | fixed | broke | decided | precision |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for c in changes:
            lines.append(f"| {c['rule']} | {c['task']} | {c['label']} | {c['changed']} | {c.get('fixed', '-')} | "
                         f"{c.get('broke', '-')} | {c['decided']} | {_number(c['precision'])} |")
        lines += ["", "*changed*: the rule's label differs from the model's; *fixed* / *broke*: of those, "
                  "the rule is right / the model was right."]
    if selection is not None:
        lines += ["", "## Rule sets used", ""] + selection_table(selection)
    lines += ["", "## Seesaw check (the paper's Figure 1)", ""] + seesaw_table(seesaw)
    confusions = sorted(k for k in figures if k.startswith("confusion "))
    if confusions:
        lines += ["", "## Confusion matrices", ""]
        for key in confusions:
            _, prediction, task = key.split(" ", 2)
            who = "KDSL (flip model + rules)" if prediction == "final" else "model alone (flip)"
            lines += [f"### {task}: {who}", "", f"![{key}]({figures[key]})", ""]
    elif "note" in figures:
        lines += ["", figures["note"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_figures(output: Path, results: dict, scored: dict, log: Callable[[str], None]) -> dict[str, str]:
    """The bar chart of the ablation and the confusion matrices of the flip model, alone and with
    the rules, as PNGs in ``output``; {} plus a note when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        note = "Charts skipped: matplotlib is not installed (pip install 'kdsl[plot]')."
        log(f"report: {note}")
        return {"note": note}
    from kdsl.evaluation import confusion_matrices
    from kdsl.plots import cjk_font, write_bars_png, write_confusion_png

    if cjk_font() is None:
        log("report: no CJK font installed; Chinese labels in the confusion matrices will be boxes "
            "(apt-get install fonts-wqy-microhei)")
    figures = {"ablation": "ablation.png"}
    write_bars_png(ablation_scores(results), SCORES, "KDSL ablation (dev, weighted F1)", output / "ablation.png")
    for prediction, by_task in confusion_matrices(scored["flip"]).items():
        for task, matrix in by_task.items():
            name = f"confusion-{prediction}-{task}.png"
            who = "KDSL" if prediction == "final" else "model alone"
            write_confusion_png(matrix, f"{task}: {who}", output / name)
            figures[f"confusion {prediction} {task}"] = name
    return figures


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"
