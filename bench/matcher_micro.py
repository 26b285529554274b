"""Micro-benchmark of kdsl.engine.matcher.AtomMatcher on synthetic Zipf-distributed Chinese text.

    python bench/matcher_micro.py [--mb 100] [--atoms 1000,5000,20000] [--aho-mb 20]

Text: a vocabulary of 50,000 distinct words (1-4 characters over 3,500 random CJK characters,
plus 500 lowercase ASCII words) drawn with Zipf(s=1) frequencies, with some punctuation and
numbers, cut into rows of 80-200 bytes.  Atom sets are drawn from the same vocabulary, skipping
the ~20 most frequent words (function words, which no rule would use) and favouring frequent
words (weight 1/sqrt(rank)), so hit rates range from ~10 % of rows down to < 0.01 %.

Reports single-threaded MB/s of UTF-8 text scanned (best of --repeats after a warm-up run, by
wall clock and by this thread's CPU time, the latter being robust on a shared machine), the
average number of distinct atoms found per row, and pyahocorasick on the same rows as a sanity
reference (its hits must agree; it runs on the first --aho-mb MB only, it is slow).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from kdsl.engine.matcher import AtomMatcher


def make_vocabulary(rng, n_words=50_000, n_chars=3_500, n_ascii=500):
    chars = rng.choice(np.arange(0x4E00, 0x9FA6), n_chars, replace=False)
    words: dict[str, None] = {}
    while len(words) < n_words - n_ascii:
        length = rng.choice([1, 2, 3, 4], p=[0.04, 0.5, 0.26, 0.2])
        words["".join(map(chr, rng.choice(chars, length)))] = None
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    while len(words) < n_words:
        words["".join(rng.choice(letters, rng.integers(2, 8)))] = None
    vocab = list(words)
    rng.shuffle(vocab)  # rank = position: frequency must not depend on word length
    return vocab


def make_text(rng, vocab, total_bytes):
    """Arrow string array of Zipf-distributed words, rows of 80-200 bytes cut at word ends."""
    extra = ["，", "。", "？", " "] + [str(x) for x in range(100)]
    tokens = [w.encode() for w in vocab + extra]
    p = np.concatenate([1.0 / np.arange(1, len(vocab) + 1), np.zeros(len(extra))])
    p[:len(vocab)] *= 0.95 / p.sum()
    p[len(vocab):] = 0.05 / len(extra)
    lens = np.array([len(t) for t in tokens], np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    blob = np.frombuffer(b"".join(tokens), np.uint8)
    ids = rng.choice(len(tokens), int(total_bytes / (lens * p).sum() * 1.02) + 100, p=p)
    ends = np.cumsum(lens[ids])
    targets = np.cumsum(rng.integers(80, 201, size=int(ends[-1] // 80) + 2))
    row_ends = np.unique(ends[np.searchsorted(ends, targets[targets < ends[-1]])])
    row_ends = row_ends[row_ends <= max(total_bytes, row_ends[0])]
    ids = ids[:np.searchsorted(ends, row_ends[-1]) + 1]
    out = np.empty(int(row_ends[-1]), np.uint8)
    pos = 0
    for chunk in np.array_split(ids, max(1, len(ids) // 1_000_000)):  # bounded temporaries
        cl = lens[chunk]
        total = int(cl.sum())
        src = np.repeat(starts[chunk] - np.concatenate([[0], np.cumsum(cl)[:-1]]), cl) + np.arange(total)
        out[pos:pos + total] = blob[src]
        pos += total
    offsets = np.concatenate([[0], row_ends]).astype(np.int32)
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(out))


def make_atoms(rng, vocab, n_atoms, first_rank=20):
    ranks = np.arange(first_rank, len(vocab))
    weight = 1.0 / np.sqrt(ranks - first_rank + 1.0)
    return [vocab[r] for r in rng.choice(ranks, n_atoms, replace=False, p=weight / weight.sum())]


def best_time(fn, repeats):
    fn()  # warm-up: compilation, page faults
    wall = cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.thread_time()
        result = fn()
        cpu = min(cpu, time.thread_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return result, wall, cpu


def aho_scan(automaton, texts):
    return [{v for _, v in automaton.iter(t)} for t in texts]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100, help="MB of text to generate")
    ap.add_argument("--atoms", default="1000,5000,20000", help="comma-separated atom counts")
    ap.add_argument("--aho-mb", type=float, default=20, help="MB of text for pyahocorasick (0 = skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    vocab = make_vocabulary(rng)
    column = make_text(rng, vocab, int(args.mb * 1e6))
    offsets = np.frombuffer(column.buffers()[1], np.int32)
    n_bytes = int(offsets[-1])
    print(f"text: {n_bytes / 1e6:.1f} MB, {len(column):,} rows, {n_bytes / len(column):.0f} B/row "
          f"(generated in {time.perf_counter() - t0:.1f} s)")

    try:
        import ahocorasick
    except ImportError:
        ahocorasick = None
        print("pyahocorasick not installed: no reference column")
    aho_rows = 0
    if ahocorasick and args.aho_mb > 0:
        aho_rows = int(np.searchsorted(offsets, args.aho_mb * 1e6))
        aho_texts = column.slice(0, aho_rows).to_pylist()
        aho_bytes = int(offsets[aho_rows])

    header = f"{'atoms':>7} {'build s':>8} {'MB/s wall':>10} {'MB/s cpu':>9} {'hits/row':>9}"
    print(header + (f" {'aho MB/s':>9} {'agree':>6}" if aho_rows else ""))
    for n_atoms in (int(x) for x in args.atoms.split(",")):
        atoms = make_atoms(np.random.default_rng(args.seed + n_atoms), vocab, n_atoms)
        t = time.perf_counter()
        matcher = AtomMatcher.build(atoms)
        build_s = time.perf_counter() - t
        (row_ptr, ids), wall, cpu = best_time(lambda: matcher.scan_column(column), args.repeats)
        line = (f"{n_atoms:>7,} {build_s:>8.2f} {n_bytes / wall / 1e6:>10.0f} {n_bytes / cpu / 1e6:>9.0f}"
                f" {len(ids) / len(column):>9.2f}")
        if aho_rows:
            automaton = ahocorasick.Automaton()
            for i, a in enumerate(atoms):
                automaton.add_word(a, i)
            automaton.make_automaton()
            found, aho_wall, _ = best_time(lambda: aho_scan(automaton, aho_texts), 1)
            agree = all(found[r] == set(ids[row_ptr[r]:row_ptr[r + 1]].tolist()) for r in range(aho_rows))
            line += f" {aho_bytes / aho_wall / 1e6:>9.0f} {str(agree):>6}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
