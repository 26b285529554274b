"""How fast the workbench answers a rule edit (the goal: <= 1 s on 1M rows, one core).

    python bench/workbench.py                    # 1,000,000 rows, 7 edits of each kind
    python bench/workbench.py --rows 100000 --repeat 3

Data (``bench/data/workbench-{rows}.parquet``, regenerated when missing): the bundled sample's
100 rows (kdsl/samples/sample.parquet: dialogues with their screenshots' OCR text) repeated to
``--rows`` rows with unique ids, plus a synthetic ``model_label``: the row's label, replaced for
30 % of the rows (seeded) by another label of its task, so that fixes and breaks have something
to count. Rules: the sample's rule file, copied to a scratch directory (the session may write).

What is timed, in-process with the process pinned to one core (``sched_setaffinity``) and
numba limited to one thread: ``Session`` start-up (read, normalise, the saved rules' matches),
then ``Session.evaluate`` — what ``POST /api/evaluate`` runs on every keystroke pause — for
three kinds of edit: a literal added to an existing rule, a new rule typed at the end of the
file, and an edit that does not check (diagnostics only); ``Session.save`` (format, write,
rebuild the saved rules' matches); and, as the peer in the same run, ``Engine.score`` of the whole
rule base on the same table. Wall time, median and worst of ``--repeat`` runs, and CPU time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "kdsl" / "samples"
MODEL_WRONG = 0.3


def make_data(rows: int) -> Path:
    path = HERE / "data" / f"workbench-{rows}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(exist_ok=True)
    sample = pq.read_table(SAMPLE / "sample.parquet")
    sample = sample.select([c for c in sample.schema.names if c not in ("image_paths", "image_turns", "instruction")])
    copies = -(-rows // sample.num_rows)
    table = pa.concat_tables([sample] * copies).slice(0, rows)
    ids = pc.binary_join_element_wise(table.column("id"), pa.array([str(k) for k in range(rows)]), "-")
    table = table.set_column(table.schema.get_field_index("id"), "id", ids)
    rng = random.Random(1)
    labels, tasks = table.column("label").to_pylist(), table.column("task").to_pylist()
    by_task = {t: sorted({l for l, tt in zip(labels, tasks) if tt == t}) for t in set(tasks)}
    model = [rng.choice([x for x in by_task[t] if x != l] or [l]) if rng.random() < MODEL_WRONG else l
             for l, t in zip(labels, tasks)]
    table = table.append_column("model_label", pa.array(model, pa.string()))
    pq.write_table(table, path, row_group_size=131072)
    return path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from kdsl.workbench.session import Session

    data = make_data(args.rows)
    scratch = Path(tempfile.mkdtemp(prefix="kdsl-bench-workbench-"))
    try:
        shutil.copy(SAMPLE / "rules" / "intent.kdsl", scratch / "intent.kdsl")
        Session(SAMPLE / "sample.parquet", scratch)  # numba compiles (or loads its cache) here, untimed
        session, start_wall, start_cpu = timed(Session, data, scratch)
        source = session.sources()["intent.kdsl"]
        line = next(i for i, text in enumerate(source.split("\n"), 1) if text.startswith("rule leak_feedback"))
        edits = {
            "literal added to a rule": (source.replace('let leak = any("漏", ', 'let leak = any("漏", "渗", '), line),
            "new rule typed at the end": (source + '\nrule waterproof: intent = "反馈密封性不好"\n'
                                          '    when user has any("水", "湿") and not user has "排水"\n'
                                          '    priority 5\n', source.count("\n") + 2),
            "edit that does not check": (source.replace("when user has leak", "when usr has leak"), line),
        }
        results = {}
        for name, (text, at) in edits.items():
            runs = [timed(session.evaluate, "intent.kdsl", text, at) for _ in range(args.repeat)]
            report = runs[-1][0]
            results[name] = ([w for _, w, _ in runs], [c for _, _, c in runs], report)
        import kdsl.engine

        engine = kdsl.engine.load(scratch)
        engine.score(session.table.slice(0, 1000))
        scoring = [timed(engine.score, session.table)[1:] for _ in range(3)]
        _, save_wall, save_cpu = timed(session.save, "intent.kdsl", edits["literal added to a rule"][0])
    finally:
        shutil.rmtree(scratch)

    print(f"## Workbench: one rule edit on {args.rows:,} rows (`bench/workbench.py`)\n")
    print(f"- Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_name()}, "
          f"{os.cpu_count()} logical cores, pinned to one; Python {platform.python_version()}.")
    print(f"- Command: `python bench/workbench.py --rows {args.rows} --repeat {args.repeat}`; load average "
          f"{os.getloadavg()[0]:.2f} at the end (other agents share the machine).")
    print(f"- Data: the sample's 100 rows repeated to {args.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB Parquet), "
          f"synthetic model_label wrong on {MODEL_WRONG:.0%} of rows; rules: kdsl/samples/rules/intent.kdsl "
          f"({len(session._base.rules)} rules).\n")
    print("| step | wall s, median (worst) | CPU s, median | rows hit | fixes / breaks |")
    print("|---|---|---|---|---|")
    print(f"| `Session` start-up (read, normalise, saved rules' matches) | {start_wall:.2f} | {start_cpu:.2f} | – | – |")
    for name, (walls, cpus, report) in results.items():
        rule = report["rule"]
        hits = f"{rule['hits']:,}" if rule else f"– ({len(report['diagnostics'])} diagnostic)"
        fixes = f"{rule['fixes']:,} / {rule['breaks']:,}" if rule else "–"
        print(f"| `evaluate`: {name} | {statistics.median(walls):.3f} ({max(walls):.3f}) | "
              f"{statistics.median(cpus):.3f} | {hits} | {fixes} |")
    print(f"| `save` (format, atomic write, rebuild the saved rules' matches) | {save_wall:.2f} | {save_cpu:.2f} | – | – |")
    score_wall = statistics.median(w for w, _ in scoring)
    edit_wall = statistics.median(results["literal added to a rule"][0])
    print(f"| for scale: `Engine.score` of all rules on the same (normalised) table | {score_wall:.3f} | "
          f"{statistics.median(c for _, c in scoring):.3f} | – | – |")
    print(f"\nAn edit costs {edit_wall / score_wall:.2f}× one `Engine.score` of the whole rule base on the same rows "
          f"(the edited rule alone is matched; the other rules' winners are kept from start-up).")


if __name__ == "__main__":
    main()
