"""The long fuzz run: the suite's fuzz targets (tests/fuzz/fuzz_targets.py) driven by a seeded
random chooser, counting every outcome instead of stopping at the first crash.

    nice python bench/fuzz.py --seconds 1800                   # both targets, half the time each
    python bench/fuzz.py --target language --inputs 100000

Prints, per target: inputs tried, accepted ("ok"), refused with a clean error, crashes (grouped
by exception type and the last kdsl frame, with a reproducing seed for each group).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz_targets import (  # noqa: E402
    challenge_import,
    language,
    mutated_challenge,
    mutated_rules,
    rule_fixtures,
)


def _where(error: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/kdsl/" in f.filename]
    frame = frames[-1] if frames else traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}"


def run(target: str, seconds: float, inputs: int, seed: int) -> dict:
    fixtures = rule_fixtures()
    outcomes: Counter = Counter()
    crashes: dict[str, tuple[int, str]] = {}
    deadline = time.monotonic() + seconds
    case = seed
    while outcomes.total() < inputs and time.monotonic() < deadline:
        case += 1
        rng = random.Random(case)
        choose = lambda n: rng.randrange(n) if n > 0 else 0  # noqa: E731
        try:
            if target == "language":
                outcome = language(mutated_rules(choose, fixtures))
            else:
                outcome = challenge_import(*mutated_challenge(choose))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # noqa: BLE001 - a crash is what we are counting
            outcome = "crash"
            crashes.setdefault(_where(error), (case, str(error)[:200]))
        outcomes[outcome] += 1
    return {"target": target, "outcomes": outcomes, "crashes": crashes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=["language", "import", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=600, help="Time bound for the whole run.")
    parser.add_argument("--inputs", type=int, default=10 ** 9, help="Inputs per target at most.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets = ["language", "import"] if args.target == "both" else [args.target]
    language("kdsl 1\n"), challenge_import(".json", "[]")  # import every module the targets use, once
    started = datetime.now(timezone.utc)
    print(f"{started:%Y-%m-%d %H:%M} UTC, seed {args.seed}, {args.seconds:.0f} s bound")
    print("| target | inputs | ok | clean errors | crashes | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for target in targets:
        began = time.monotonic()
        result = run(target, args.seconds / len(targets), args.inputs, args.seed)
        counts = result["outcomes"]
        print(f"| {target} | {counts.total():,} | {counts['ok']:,} | {counts['clean']:,} | {counts['crash']:,} "
              f"| {time.monotonic() - began:.0f} |", flush=True)
        for where, (case, message) in result["crashes"].items():
            print(f"  crash {where} (seed case {case}): {message}", flush=True)


if __name__ == "__main__":
    main()
