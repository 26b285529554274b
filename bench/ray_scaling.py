"""Ray scale-out benchmark: `kdsl score` on the local path against `--ray` with 1 and 2 workers.

    python bench/ray_scaling.py                          # 1,000,000 rows, 1,000 rules
    python bench/ray_scaling.py --rows 20000 --out /tmp/ray-scaling.md

The log and rules are those of bench/engine.py (made there when missing). The local path runs as
the `kdsl score` command in a subprocess; Ray runs in this process on one local Ray started with
workers + 1 logical CPUs (reading and writing need a CPU besides the scoring actors), so the
numbers show Ray's overhead and how far scoring spreads over the machine's cores, not a cluster.
Every Ray output is checked against the local one (rows sorted by id); a difference exits 1.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine as generator  # bench/engine.py: the log and rule generators


def ensure_inputs(rows: int, rules: int, seed: int) -> tuple[Path, Path]:
    vocab = None
    log_path = HERE / "data" / f"log-{rows}.parquet"
    rules_path = HERE / "data" / f"rules-{rules}.kdsl"
    if not log_path.exists() or not rules_path.exists():
        vocab = generator.build_vocabulary(seed)
        generator.ensure_log(log_path, rows, vocab, seed)
    if not rules_path.exists():
        rules_path.write_text(generator.kdsl_source(generator.generate_rules(rules, vocab, seed)), encoding="utf-8")
    return log_path, rules_path


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def same_rows(a: Path, b: Path) -> bool:
    columns = ["id", "intent", "intent_rule", "intent_source"]
    return pq.read_table(a, columns=columns).sort_by("id").equals(pq.read_table(b, columns=columns).sort_by("id"))


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--workers", default="1,2", help="comma-separated Ray worker counts")
    ap.add_argument("--repeat", type=int, default=2, help="runs per setting; the first starts the actors")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="Markdown results file (default: stdout only)")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]

    import ray

    import kdsl.engine
    from kdsl.scaleout import score_on_ray

    log_path, rules_path = ensure_inputs(args.rows, args.rules, args.seed)
    ruleset = kdsl.engine.load(rules_path).ruleset
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {}
    problems = []
    with tempfile.TemporaryDirectory(dir=HERE / "data") as scratch:
        local_out = Path(scratch) / "local.parquet"
        command = [sys.executable, "-c", "import sys; from kdsl.cli import main; sys.argv[0] = 'kdsl'; main()",
                   "score", str(log_path), "-r", str(rules_path), "-o", str(local_out)]
        for _ in range(args.repeat):
            print("local ...", end=" ", flush=True)
            times.setdefault("local", []).append(timed(lambda: subprocess.run(command, check=True)))
            print(f"{times['local'][-1]:.1f} s", flush=True)
        ray.init(num_cpus=max(counts) + 1, include_dashboard=False, logging_level=logging.WARNING)
        try:
            for n in counts:
                out = Path(scratch) / f"ray-{n}"
                for _ in range(args.repeat):
                    print(f"ray, {n} workers ...", end=" ", flush=True)
                    times.setdefault(f"ray{n}", []).append(timed(lambda out=out, n=n: score_on_ray(
                        log_path, ruleset, out, workers=n)))
                    print(f"{times[f'ray{n}'][-1]:.1f} s", flush=True)
                if not same_rows(out, local_out):
                    problems.append(f"Ray with {n} workers: output differs from the local path")
        finally:
            ray.shutdown()
    report = render(args, counts, times, load_before, os.getloadavg(), log_path, rules_path)
    print("\n" + report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    for problem in problems:
        print(f"!!! {problem}", file=sys.stderr)
    return 1 if problems else 0


def render(args, counts, times, load_before, load_after, log_path, rules_path) -> str:
    import importlib.metadata as md

    best = {key: min(values) for key, values in times.items()}

    def runs(key):
        return " / ".join(f"{t:.1f}" for t in times[key])

    lines = [
        (f"Ray scale-out, {datetime.date.today().isoformat()}: `{log_path.name}` ({args.rows:,} rows), "
         f"`{rules_path.name}` ({args.rules:,} rules)."),
        (f"Machine: {machine()}; Ray {md.version('ray')}; load average {load_before[0]:.1f} before, "
         f"{load_after[0]:.1f} after (1 min)."),
        "",
        "| path | wall s, each run (first run starts the actors) | best s | vs local | vs 1 worker |",
        "|---|---|---|---|---|",
        f"| local `kdsl score` (subprocess, 1 thread) | {runs('local')} | {best['local']:.1f} | 1.00× | |",
    ]
    for n in counts:
        key = f"ray{n}"
        scaling = f"{best[f'ray{counts[0]}'] / best[key]:.2f}×" if n != counts[0] else "1.00×"
        lines.append(f"| `--ray`, {n} worker{'s' if n > 1 else ''} of 1 CPU (local Ray of "
                     f"{max(counts) + 1} logical CPUs) | {runs(key)} | {best[key]:.1f} | "
                     f"{best['local'] / best[key]:.2f}× | {scaling} |")
    lines += ["", ("\"vs local\" and \"vs 1 worker\" are speed-ups (higher is faster), from the best runs. "
                   "Ray times exclude `ray.init`; they include reading, scoring and writing the "
                   "output directory.")]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
