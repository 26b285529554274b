"""kdsl.io: atomic outputs and background reading."""

import pytest

from kdsl.io import atomic_path, prefetch


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_prefetch_yields_everything_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_prefetch_raises_the_producers_error():
    def failing():
        yield 1
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        list(prefetch(failing()))


def test_prefetch_stops_its_thread_when_the_caller_stops():
    import threading

    produced = []

    def endless():
        for i in range(10**9):
            produced.append(i)
            yield i

    batches = prefetch(endless(), depth=2)
    assert next(batches) == 0
    batches.close()
    for thread in threading.enumerate():
        if thread.name == "kdsl-prefetch":
            thread.join(timeout=2)
    assert not any(t.name == "kdsl-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 10
