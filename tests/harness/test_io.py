"""Tests for harness.io: atomic writes give new files the usual mode and keep a replaced one's."""

import os
import stat

import pytest

from harness.io import atomic_write, atomic_write_json, atomic_write_text


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for a test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_file_gets_0o666_minus_the_umask(tmp_path, umask, mask, expected):
    """As open(path, "w") would (mkstemp's 0o600 made e.g. `graphrepair.repair --out` files
    private)."""
    umask(mask)
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "sub" / "b.json", {"k": 1})
    assert mode(tmp_path / "a.txt") == expected
    assert mode(tmp_path / "sub" / "b.json") == expected


@pytest.mark.parametrize("old_mode", [0o600, 0o640, 0o755, 0o444])
def test_replaced_file_keeps_its_mode(tmp_path, umask, old_mode):
    umask(0o022)
    path = tmp_path / "script.py"
    path.write_text("old")
    os.chmod(path, old_mode)
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_text() == "new"
    assert mode(path) == old_mode


def test_no_temporary_file_is_left_behind(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", lambda f: (_ for _ in ()).throw(RuntimeError("boom")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "x"
