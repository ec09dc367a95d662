"""jepa.teacher.extract: a deterministic plan, kill -9 and resume equal to one run, rank shares."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from jepa.corpus.extract import extract_functions
from jepa.store import StateStore, function_key
from jepa.teacher.extract import extract_states, plan_shards, state_spec
from jepa.teacher.model import Teacher

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "harness" / "stats.py"  # real code


def _functions():
    functions, skipped = extract_functions(SOURCE.read_bytes(), repository="harness", path="stats.py")
    assert skipped is None and len(functions) >= 8
    return functions


def test_the_plan_depends_only_on_the_set_of_functions():
    functions = _functions()
    plan = plan_shards(functions, 3)
    assert plan == plan_shards(functions[::-1] + functions[:2], 3)  # order and repeats ignored
    sizes = [len(s) for s in plan]
    assert sum(sizes) == len(functions) and max(sizes) == 3
    lengths = [len(f.signature) + len(f.body) for s in plan for f in s]
    assert lengths == sorted(lengths)
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(functions, 0)


def _extract(teacher, root, functions, read=True, **kw):
    spec = state_spec(teacher, max_signature_tokens=32, max_body_tokens=64, tokens="all")
    with StateStore.open(root, spec) as store:
        summary = extract_states(teacher, functions, store, shard_size=3, batch_size=4,
                                 progress=False, **kw)
        keys = [function_key(f.signature, f.body) for f in functions]
        return summary, store.read(keys, tokens=True) if read else None, store.directory


def test_ranks_share_the_shards_and_together_equal_one_process(tiny_bert, tmp_path):
    teacher = Teacher.load(str(tiny_bert), layer=2, dtype="float32")
    functions = _functions()
    one, states, directory = _extract(teacher, tmp_path / "one", functions)
    assert one["computed"] == len(functions) and one["reused"] == 0
    r0, _, _ = _extract(teacher, tmp_path / "two", functions, read=False, rank=0, world_size=2)
    r1, both, directory2 = _extract(teacher, tmp_path / "two", functions, rank=1, world_size=2)
    assert r0["computed"] + r1["computed"] == len(functions) and r0["computed"] > 0
    assert torch.equal(states["body"], both["body"])
    assert sorted(p.name for p in (directory / "shards").iterdir()) == \
        sorted(p.name for p in (directory2 / "shards").iterdir())
    again, _, _ = _extract(teacher, tmp_path / "one", functions)
    assert (again["computed"], again["reused"]) == (0, len(functions))


_CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from jepa.store import StateStore
    from jepa.teacher.extract import extract_states, state_spec
    from jepa.teacher.model import Teacher
    from tests.jepa.test_extract_states import _functions
    teacher = Teacher.load({model!r}, layer=2, dtype="float32")
    spec = state_spec(teacher, max_signature_tokens=32, max_body_tokens=64, tokens="all")
    store = StateStore.open({out!r}, spec)
    write = store.write_shard
    def slow_write(*a, **k):
        name = write(*a, **k)
        time.sleep({pause})
        return name
    store.write_shard = slow_write
    extract_states(teacher, _functions(), store, shard_size=3, batch_size=4, progress=False)
""")


@pytest.mark.slow
def test_kill_9_mid_way_then_rerun_equals_an_uninterrupted_run(tiny_bert, tmp_path):
    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT), model=str(tiny_bert),
                                                                  out=str(out), pause=30)],
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    index = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for the first shard to be committed
        index = next(out.glob("*/index.sqlite"), None)
        if index is not None:
            with sqlite3.connect(index) as db:
                if db.execute("SELECT COUNT(*) FROM shards").fetchone()[0] >= 1:
                    break
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    teacher = Teacher.load(str(tiny_bert), layer=2, dtype="float32")
    functions = _functions()
    resumed, states, directory = _extract(teacher, out, functions)
    assert 0 < resumed["reused"] < len(functions)
    assert resumed["reused"] + resumed["computed"] == len(functions)
    _, fresh, fresh_dir = _extract(teacher, tmp_path / "fresh", functions)
    for name in ("signature", "body", "signature_length", "body_length"):
        assert torch.equal(states[name], fresh[name]), name
    assert all(torch.equal(a, b) for a, b in zip(states["body_tokens"], fresh["body_tokens"]))
    shards = sorted(p.name for p in (fresh_dir / "shards").iterdir())
    assert sorted(p.name for p in (directory / "shards").iterdir()) == shards
    for name in shards:  # the files are the same bytes
        assert (directory / "shards" / name).read_bytes() == (fresh_dir / "shards" / name).read_bytes()
