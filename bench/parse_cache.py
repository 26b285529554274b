"""Does the parse cache pay? Load time of a 5,000-rule file parsed by Lark vs read back from
kdsl's JSON parse cache (and, for comparison, from a pickle, what the cache used to be).

    python bench/parse_cache.py [--rules 5000] [--repeat 5]

Each time is the best of ``--repeat`` runs of ``kdsl.dsl.parse_file`` (reading, decoding and
building the syntax tree; checking and compiling are not included), in this process.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from engine import build_vocabulary, generate_rules, kdsl_source  # noqa: E402  (bench/engine.py)


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["KDSL_CACHE_DIR"] = str(Path(tmp) / "cache")
        import kdsl
        from kdsl.dsl import cache, parse_file

        path = Path(tmp) / f"rules-{args.rules}.kdsl"
        path.write_text(kdsl_source(generate_rules(args.rules, build_vocabulary(1), 1)), encoding="utf-8")
        program = parse_file(path)  # fills the cache
        [entry] = (Path(tmp) / "cache" / "parsed").glob("*.json")
        os.environ["KDSL_CACHE_DIR"] = ""
        uncached = best_of(args.repeat, lambda: parse_file(path))
        os.environ["KDSL_CACHE_DIR"] = str(Path(tmp) / "cache")
        cached = best_of(args.repeat, lambda: parse_file(path))
        assert repr(parse_file(path)) == repr(program)
        pickled = pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
        unpickle = best_of(args.repeat, lambda: pickle.loads(pickled))
        size, source_size = entry.stat().st_size, path.stat().st_size
    print(f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical cores, load average {os.getloadavg()[0]:.2f}; Python "
          f"{platform.python_version()}, kdsl {kdsl.__version__}; `python bench/parse_cache.py "
          f"--rules {args.rules} --repeat {args.repeat}`, best of {args.repeat}.")
    print(f"- {args.rules:,} rules ({source_size / 1e6:.2f} MB of source, cache entry "
          f"{size / 1e6:.2f} MB of JSON, format {cache.FORMAT}): Lark parse {uncached:.2f} s, "
          f"JSON cache {cached:.3f} s ({uncached / cached:.1f}× faster); "
          f"for comparison, unpickling the same tree {unpickle:.3f} s.")


if __name__ == "__main__":
    main()
