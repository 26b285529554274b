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


# ---- what an atomic write may replace (issue: -o /dev/null, fmt through a link, 0600 outputs)

import os  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from kdsl.errors import InputError  # noqa: E402
from kdsl.io import atomic_directory, remove_leftovers, write_text_atomically  # noqa: E402


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "new.txt", "x")
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.txt") == 0o644
    assert _mode(tmp_path / "model") == 0o755


def test_an_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "shared.txt"
    target.write_text("old")
    target.chmod(0o664)
    write_text_atomically(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o664


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "real.kdsl"
    real.write_text("old")
    link = tmp_path / "link.kdsl"
    link.symlink_to(real)
    write_text_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize("kind, message", [
    ("fifo", "not a regular file"), ("directory", "is a directory"),
    ("missing folder", "no folder"), ("read-only", "read-only"),
])
def test_targets_that_cannot_be_replaced_are_refused_and_left_alone(tmp_path, kind, message):
    # A FIFO stands in for /dev/null: a regression must not replace the machine's device node.
    target = {"fifo": tmp_path / "fifo", "directory": tmp_path,
              "missing folder": tmp_path / "nowhere" / "out.txt", "read-only": tmp_path / "ro.txt"}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    if kind == "read-only":
        target.write_text("keep")
        target.chmod(0o444)
    before = os.stat(target) if os.path.exists(target) else None
    with pytest.raises(InputError, match=message):
        write_text_atomically(target, "x")
    if before is not None:
        after = os.stat(target)
        assert (after.st_ino, after.st_mode, after.st_dev) == (before.st_ino, before.st_mode, before.st_dev)
    if kind == "read-only":
        assert target.read_text() == "keep"


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    """A SIGKILLed writer cannot clean up; the next write of the same output removes what it left
    (and only that: a live writer's temporary and other files stay)."""
    target = tmp_path / "out.txt"
    script = ("import os, sys\nfrom kdsl.io import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(left) == 1 and left[0].name.startswith(".out.txt.")  # recognisable: whose, and for what
    other = tmp_path / "other.txt"
    other.write_text("mine")
    with atomic_path(target) as tmp:
        live = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
        assert live == [tmp]  # the dead writer's file is gone, ours is there
        tmp.write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "out.txt"]
    assert remove_leftovers(target) == []
