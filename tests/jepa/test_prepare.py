"""``python -m jepa.prepare``: corpus stage (build, cache, refuse another configuration, --force)
and teacher stage (states of every function, cached, damaged shards recomputed)."""

import json

import pytest

from jepa.corpus.build import SPLITS
from jepa.prepare import data_dir, main
from jepa.store import CorpusIndex

_MODULE = '''\
"""Repository {r}."""


def parse(text: str) -> list[str]:
    """Split ``text`` into words."""
    words = []
    for word in text.split():
        if word and word != "{r}":
            words.append(word.strip(".,"))
    return words


class Counter{r}:
    def __init__(self):
        self.counts = {{}}

    def add(self, key, n=1):
        self.counts[key] = self.counts.get(key, {r}) + n
        return self.counts[key]

    def total(self):
        return sum(self.counts.values()) + {r}


def one_liner(x):
    return x + {r}
'''


def _repos(root, n=4):
    for r in range(n):
        pkg = root / f"repo{r}" / "pkg"
        pkg.mkdir(parents=True)
        (pkg / "words.py").write_text(_MODULE.format(r=r), encoding="utf-8")
        (pkg / "broken.py").write_text("def bad(:\n    pass\n", encoding="utf-8")
    return root


def _args(tmp_path, *extra):
    src = _repos(tmp_path / "src")
    return ["--exp", "phase0", "--data-dir", str(tmp_path / "data"),
            "--set", "corpus.source=directory", "--set", f"corpus.directory={src}",
            "--set", "corpus.minimum=1", "--skip", "teacher", *extra]


def test_prepare_builds_caches_refuses_another_config_and_rebuilds_with_force(tmp_path, capsys):
    args = _args(tmp_path)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[corpus]" in out and "cached" not in out and "skipped files 4 of 8" in out
    index_path = tmp_path / "data" / "corpus.sqlite"
    summary = json.loads((tmp_path / "data" / "corpus.json").read_text())
    with CorpusIndex.open(index_path) as index:
        counts = index.counts()
        assert sum(counts[s]["repositories"] for s in SPLITS) == 4
        # parse and add have 2+ body lines; __init__, total and one_liner have one
        assert sum(counts[s]["functions"] for s in SPLITS) == 8 == summary["functions"]
        assert summary["splits"] == counts and summary["filtered_short"] == 12
        assert index.meta()["config"]["min_body_lines"] == 2
    mtime = index_path.stat().st_mtime_ns

    assert main(args) == 0
    assert "[corpus] cached" in capsys.readouterr().out
    assert index_path.stat().st_mtime_ns == mtime

    changed = args + ["--set", "corpus.min_body_lines=1"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "another corpus configuration" in err and "min_body_lines: 2 -> 1" in err
    assert "--force" in err and index_path.stat().st_mtime_ns == mtime

    assert main(changed + ["--force"]) == 0
    assert "cached" not in capsys.readouterr().out
    with CorpusIndex.open(index_path) as index:
        # 20 functions; the 4 identical __init__ bodies are kept once
        assert sum(index.counts()[s]["functions"] for s in SPLITS) == 17
        assert index.meta()["counts"]["duplicates_across"] == 3
        assert index.meta()["config"]["min_body_lines"] == 1
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["corpus.json", "corpus.sqlite"]


def test_a_damaged_index_is_exit_2_naming_the_rebuild_command_and_force_rebuilds(tmp_path, capsys):
    args = _args(tmp_path)
    assert main(args) == 0
    (tmp_path / "data" / "corpus.sqlite").write_bytes(b"garbage")
    capsys.readouterr()
    assert main(args) == 2
    assert "python -m jepa.prepare --exp phase0 --force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--exp", "nope"], "unknown experiment id 'nope'"),
    (["--exp", "phase0", "--set", "corpus.source=directory", "--set", "corpus.directory=/no/such"],
     "does not exist"),
    ([], "--exp is required"),
])
def test_bad_input_is_exit_2_with_one_error_line(tmp_path, capsys, args, message):
    assert main(args + ["--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "data").exists()


def test_data_dir_prefers_the_flag_then_jepa_data_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JEPA_DATA", str(tmp_path / "env"))
    assert data_dir("phase0", tmp_path / "flag") == tmp_path / "flag"
    assert data_dir("phase0") == tmp_path / "env" / "phase0"
    monkeypatch.delenv("JEPA_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir("phase0") == tmp_path / "home" / ".cache" / "jepa" / "phase0"


def test_the_installed_search_path_leaves_out_the_working_directory(tmp_path, monkeypatch):
    import sys

    from jepa.corpus.sources import installed_search_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), "/usr/lib/python3/site-packages"])
    assert installed_search_path() == ["/usr/lib/python3/site-packages"]


def test_teacher_stage_stores_every_function_then_is_cached_and_heals_a_damaged_shard(
        tmp_path, capsys, tiny_bert):
    args = [a for a in _args(tmp_path) if a not in ("--skip", "teacher")]
    args += ["--set", f"teacher.model={tiny_bert}", "--set", "teacher.layer=1",
             "--set", "store.shard_size=3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[teacher]" in out and "computed 8" in out
    summary = json.loads((tmp_path / "data" / "states.json").read_text())
    assert (summary["functions"], summary["shards"], summary["computed"]) == (8, 3, 8)
    assert main(args) == 0
    assert "[teacher] cached" in capsys.readouterr().out
    from safetensors import safe_open

    shard = sorted((tmp_path / "data" / "states").glob("*/shards/*.safetensors"))[0]
    with safe_open(shard, "pt") as f:
        rows = f.get_slice("body").get_shape()[0]
    shard.write_bytes(shard.read_bytes()[:100])
    assert main(args) == 0
    out = capsys.readouterr().out
    # only the damaged shard was recomputed
    assert "[teacher]\n" in out and f"computed {rows} in" in out and f"reused {8 - rows}" in out
    assert main(args + ["--force"]) == 0
    assert "computed 8" in capsys.readouterr().out
