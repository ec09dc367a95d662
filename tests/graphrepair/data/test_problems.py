"""Tests for graphrepair.data.problems: loaders on the real files, error messages, download checks, splits."""

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from graphrepair.data import problems as data
from graphrepair.data.problems import (
    DATA_FILES,
    Problem,
    ensure_file,
    load_humaneval,
    load_mbpp,
    load_problems,
    load_sanitized_mbpp,
    resolve_data_dir,
    split_problems,
)
from tests.graphrepair.conftest import data_dir as shared_data_dir


def data_dir() -> Path:
    """The tests' dataset directory (see conftest); missing files fail the tests, never skip them."""
    return resolve_data_dir(shared_data_dir())


def test_counts_and_fields():
    mbpp = load_mbpp(data_dir())
    sanitized = load_sanitized_mbpp(data_dir())
    humaneval = load_humaneval(data_dir())
    assert (len(mbpp), len(sanitized), len(humaneval)) == (974, 427, 164)
    p = mbpp[0]
    assert p.task_id == "mbpp/1" and p.dataset == "mbpp" and p.setup == ""
    assert p.source.startswith("R = 3\r\nC = 3\r\ndef min_cost(cost, m, n): \r\n\ttc = ")
    assert p.tests[0] == "assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8"
    assert len(p.tests) == 3 and isinstance(p.tests, tuple)
    assert sum(bool(q.setup) for q in mbpp) == 2
    assert sanitized[0].task_id == "sanitized-mbpp/2" and sanitized[0].dataset == "sanitized-mbpp"
    assert "\r" not in sanitized[0].source
    with_imports = [q for q in sanitized if q.setup]
    assert with_imports and all(q.setup.startswith(("import", "from")) for q in with_imports)
    h0 = humaneval[0]
    assert h0.task_id == "humaneval/HumanEval/0" and h0.dataset == "humaneval"
    assert h0.source.startswith("from typing import List\n\n\ndef has_close_elements(")
    assert len(h0.tests) == 7 and h0.tests[0].startswith("assert candidate([1.0, 2.0, 3.9")
    assert h0.setup.endswith("\ncandidate = has_close_elements\n")
    fallback = [q.task_id for q in humaneval if q.tests[0].startswith("check(")]
    assert fallback == [f"humaneval/HumanEval/{i}" for i in (32, 38, 44, 50, 53, 129, 151)]
    assert humaneval[32].tests == ("check(find_zero)",)
    assert len({q.task_id for q in mbpp + sanitized + humaneval}) == 974 + 427 + 164
    assert load_problems("sanitized-mbpp", data_dir()) == sanitized


def _run(problem: Problem) -> list[bool]:
    ns: dict = {}
    exec(compile(problem.source, "program", "exec"), ns)
    exec(compile(problem.setup, "setup", "exec"), ns)
    outcomes = []
    for test in problem.tests:
        try:
            exec(compile(test, "test", "exec"), ns)
            outcomes.append(True)
        except AssertionError:
            outcomes.append(False)
    return outcomes


def test_reference_solutions_pass_subset():
    # All 164 HumanEval reference solutions pass (checked once by script); here a fast subset,
    # including both test layouts, and a mutant that must fail.
    humaneval = load_humaneval(data_dir())
    for p in humaneval[:12] + [humaneval[32], humaneval[53]]:
        assert all(_run(p)), p.task_id
    p = humaneval[0]
    broken = Problem(p.task_id, p.source.replace("< threshold", "> threshold"), p.tests, p.setup)
    assert not all(_run(broken))
    for p in load_sanitized_mbpp(data_dir())[:10]:
        assert all(_run(p)), p.task_id


def test_load_problems_unknown_name():
    with pytest.raises(ValueError, match="valid names: mbpp, sanitized-mbpp, humaneval"):
        load_problems("mbpp-plus", data_dir())


def _install(tmp_path: Path, name: str, content: bytes, monkeypatch) -> None:
    (tmp_path / name).write_bytes(content)
    spec = DATA_FILES[name]
    fake = spec._replace(sha256=hashlib.sha256(content).hexdigest(), size=len(content))
    monkeypatch.setitem(DATA_FILES, name, fake)


def test_malformed_jsonl_names_file_and_line(tmp_path, monkeypatch):
    good = {"task_id": 1, "code": "x = 1", "test_list": ["assert x == 1"], "test_setup_code": ""}
    bad_records = [
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "code"}),
        json.dumps({**good, "test_list": "assert x == 1"}),
        json.dumps({**good, "task_id": "1"}),
    ]
    for bad in bad_records:
        content = (json.dumps(good) + "\n" + json.dumps(good) + "\n" + bad + "\n").encode()
        _install(tmp_path, "mbpp.jsonl", content, monkeypatch)
        with pytest.raises(ValueError, match=r"mbpp\.jsonl, line 3: "):
            load_mbpp(tmp_path)
    _install(tmp_path, "mbpp.jsonl", (json.dumps(good) + "\n").encode(), monkeypatch)
    assert load_mbpp(tmp_path) == [Problem("mbpp/1", "x = 1", ("assert x == 1",), "", "mbpp")]


def test_malformed_json_array_and_gzip(tmp_path, monkeypatch):
    rec = {"task_id": 2, "code": "y = 2", "test_list": ["assert y == 2"], "test_imports": [1]}
    _install(tmp_path, "sanitized-mbpp.json", json.dumps([rec, rec]).encode(), monkeypatch)
    with pytest.raises(ValueError, match=r"sanitized-mbpp\.json, record 0: 'test_imports'"):
        load_sanitized_mbpp(tmp_path)
    he = {
        "task_id": "HumanEval/0",
        "prompt": "def f():\n",
        "canonical_solution": "    return 1\n",
        "entry_point": "f",
        "test": "def check(candidate):\n    assert candidate() == 1\n",
    }
    lines = json.dumps(he) + "\n" + json.dumps({**he, "entry_point": None}) + "\n"
    _install(tmp_path, "HumanEval.jsonl.gz", gzip.compress(lines.encode(), mtime=0), monkeypatch)
    with pytest.raises(ValueError, match=r"HumanEval\.jsonl\.gz, line 2: 'entry_point'"):
        load_humaneval(tmp_path)


def test_missing_file_message(tmp_path, monkeypatch):
    monkeypatch.delenv("GRAPHREPAIR_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        ensure_file("mbpp.jsonl", tmp_path, download=False)
    msg = str(info.value)
    assert "mbpp.jsonl" in msg and str(tmp_path) in msg
    assert (
        "--data-dir" in msg and "GRAPHREPAIR_DATA" in msg and DATA_FILES["mbpp.jsonl"].sha256 in msg
    )
    monkeypatch.setenv("GRAPHREPAIR_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"mbpp\.jsonl.*nowhere"):
        ensure_file("mbpp.jsonl", download=False)


def test_failed_download_raises_file_not_found(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise data.urllib.error.URLError("offline")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match=r"HumanEval\.jsonl\.gz.*offline.*--data-dir"):
        ensure_file("HumanEval.jsonl.gz", tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_download_is_verified_and_atomic(tmp_path, monkeypatch):
    payload = (data_dir() / "HumanEval.jsonl.gz").read_bytes()

    class Response:
        def __init__(self, body):
            self.body, self.done = body, False

        def read(self, n):
            chunk, self.body = self.body[:n], self.body[n:]
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Response(payload))
    path = ensure_file("HumanEval.jsonl.gz", tmp_path)
    assert path.read_bytes() == payload and len(load_humaneval(tmp_path)) == 164
    path.unlink()
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Response(b"junk"))
    with pytest.raises(ValueError, match="expected " + DATA_FILES["HumanEval.jsonl.gz"].sha256):
        ensure_file("HumanEval.jsonl.gz", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_wrong_sha_is_an_error(tmp_path):
    shutil.copy(data_dir() / "mbpp.jsonl", tmp_path / "mbpp.jsonl")
    with open(tmp_path / "mbpp.jsonl", "ab") as f:
        f.write(b"\n")
    found = hashlib.sha256((tmp_path / "mbpp.jsonl").read_bytes()).hexdigest()
    with pytest.raises(ValueError) as info:
        load_mbpp(tmp_path)
    assert found in str(info.value) and DATA_FILES["mbpp.jsonl"].sha256 in str(info.value)


def test_data_files_match_provenance():
    for name, spec in DATA_FILES.items():
        path = ensure_file(name, data_dir(), download=False)
        assert path.stat().st_size == spec.size
        assert spec.url.startswith("https://raw.githubusercontent.com/") and name in spec.url


def test_resolve_data_dir(monkeypatch, tmp_path):
    assert resolve_data_dir(tmp_path) == tmp_path
    monkeypatch.setenv("GRAPHREPAIR_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    monkeypatch.delenv("GRAPHREPAIR_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "graphrepair" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == Path.home() / ".cache" / "graphrepair" / "data"


def _problems(n: int) -> list[Problem]:
    return [Problem(f"toy/{i}", f"x = {i}", ("assert True",)) for i in range(n)]


def test_split_deterministic_disjoint_order_independent():
    problems = load_mbpp(data_dir())
    split = split_problems(problems, seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [
        779,
        98,
        97,
    ]  # cuts at 779.2 -> 779, 876.6 -> 877
    ids = [{p.task_id for p in split[k]} for k in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == {p.task_id for p in problems}
    assert split == split_problems(list(reversed(problems)), seed=0)
    assert split == split_problems(problems[::2] + problems[1::2], seed=0)
    other = split_problems(problems, seed=1)
    assert {p.task_id for p in other["test"]} != ids[2]
    assert [len(v) for v in split_problems(_problems(10), (0.5, 0.25, 0.25)).values()] == [5, 3, 2]
    assert [len(v) for v in split_problems(_problems(10), (1.0, 0.0, 0.0)).values()] == [10, 0, 0]


def test_split_rejects_bad_input():
    with pytest.raises(ValueError, match="summing to 1"):
        split_problems(_problems(10), (0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="summing to 1"):
        split_problems(_problems(10), (0.9, 0.1))
    with pytest.raises(ValueError, match="unique task ids"):
        split_problems(_problems(3) + _problems(1))
