"""The whole pipeline's wall time and its ablation on tmm-sim (train -> dev), step by step.

    python bench/pipeline.py [--config bench/pipeline-tmm-sim.toml] [--fresh] [--out section.md]

--fresh deletes the output folder first, so that every step runs (OCR results still come from
kdsl's OCR cache when it holds them: say which in the results). Prints a Markdown section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from kdsl.pipeline import load_config, run
from kdsl.report import ablation_table, rule_gains, seesaw_table, selection_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=Path(__file__).with_name("pipeline-tmm-sim.toml"))
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config = load_config(args.config)
    output = Path(config["output"])
    if args.fresh and output.exists():
        shutil.rmtree(output)
    log: list[str] = []
    started = time.perf_counter()
    outcomes = run(config, log=lambda line: (log.append(line), print(line, flush=True)))
    wall = time.perf_counter() - started
    steps = [m.groups() for line in log if (m := re.match(r"(\S+): done in ([\d.]+) s", line))]
    results = json.loads((output / "evaluation.json").read_text(encoding="utf-8"))
    seesaw = json.loads((output / "seesaw.json").read_text(encoding="utf-8"))
    selection = json.loads((output / "selection.json").read_text(encoding="utf-8"))
    ocr_line = " ".join(line for line in log if line.startswith("ocr: ") and "images" in line)
    lines = [
        f"## The whole pipeline on tmm-sim (`bench/pipeline.py`)", "",
        f"- Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores, Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.2f} at the end.",
        f"- Config `{Path(args.config).name}`: train 1,000 rows -> dev 500, OCR on, rules mined for "
        f"{', '.join(config['mining']['tasks'])}, baseline {config['model']['epochs']} epochs, "
        f"seesaw seeds {config['seesaw']['seeds']}. {ocr_line}",
        f"- **Wall time {wall:.0f} s** ({'every step ran' if all(v == 'ran' for v in outcomes.values()) else f'{len(steps)} steps ran'}).", "",
        "| step | seconds |", "|---|---:|", *[f"| {name} | {float(sec):.1f} |" for name, sec in steps], "",
        ablation_table(results), "", *rule_gains(results), "", *selection_table(selection), "",
        *seesaw_table(seesaw),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
