"""The corpus index: exact round trip, atomic build, damaged files and other schemas refused."""

import sqlite3

import pytest

import jepa.store.corpus as store
from jepa.corpus.build import SPLITS, build_corpus
from jepa.corpus.extract import extract_functions
from jepa.store import SCHEMA_VERSION, CorpusIndex, StoreError

# real code shapes: methods, async, decorators, docstrings, nested functions, annotations
_SOURCE = '''\
import functools


class Cache:
    """A tiny cache."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.items = {}

    @functools.lru_cache(maxsize=None)
    def get(self, key, default=None) -> "int | None":
        """Return the item or ``default``."""
        if key in self.items and self.items[key] is not None:
            return self.items[key]
        return default

    async def fetch(self, key, *, retries=3):
        for _ in range(retries):
            value = self.get(key)
            if value:
                return value
        raise KeyError(key)


def outer(xs: list[int]) -> list[int]:
    def inner(x):
        # doubled
        return x * 2 if x > 0 else -x
    return [inner(x) for x in xs if x]
'''


def _corpus(n_repos=6):
    functions = []
    for r in range(n_repos):
        text = _SOURCE.replace("self.size = size", f"self.size = size + {r}") \
                      .replace("range(retries)", f"range(retries + {r})") \
                      .replace("x * 2", f"x * {r + 2}").replace("return default", f"return default or {r}")
        found, skipped = extract_functions(text, repository=f"repo{r}", path="pkg/cache.py")
        assert skipped is None
        functions += found
    return build_corpus(functions, min_body_lines=1, seed=3)


def _write(path, corpus, **kw):
    return CorpusIndex.write(path, corpus, config={"cap": 5, "seed": 3}, exp="t", source="directory",
                             versions={"repo0": "1.2"}, counts={"skipped_files": 1}, **kw)


def test_round_trip_is_exact_per_split_properties_included(tmp_path):
    corpus = _corpus()
    path = _write(tmp_path / "corpus.sqlite", corpus)
    with CorpusIndex.open(path, exp="t") as index:
        assert sum(len(index.functions(s)) for s in SPLITS) == len(corpus.functions) > 20
        for s in SPLITS:
            assert index.functions(s) == corpus.split(s)
        assert index.counts() == corpus.counts()
        meta = index.meta()
        assert meta["schema_version"] == SCHEMA_VERSION and meta["exp"] == "t"
        assert meta["config"] == {"cap": 5, "seed": 3}
        assert meta["counts"]["skipped_files"] == 1
        assert meta["counts"]["duplicates_removed"] == corpus.duplicates_removed
        repos = index.repositories()
        assert repos[0] == {"name": "repo0", "split": corpus.split_of["repo0"], "source": "directory",
                            "version": "1.2"}
        assert repos[1]["version"] is None
        row = index._db.execute("SELECT text_sha256 FROM functions WHERE id = 0").fetchone()[0]
        assert row == store.text_sha256(corpus.functions[0])
        with pytest.raises(ValueError, match="unknown split"):
            index.functions("dev")


def test_a_failed_build_leaves_no_index_and_no_temporary_file(tmp_path, monkeypatch):
    calls = []

    def failing_row(i, f, *rest):
        calls.append(i)
        if i == 5:
            raise RuntimeError("killed mid-way")
        return original(i, f, *rest)

    original = store._function_row
    monkeypatch.setattr(store, "_function_row", failing_row)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        _write(tmp_path / "corpus.sqlite", _corpus())
    assert calls and list(tmp_path.iterdir()) == []


def test_a_failed_rebuild_keeps_the_old_index(tmp_path, monkeypatch):
    path = _write(tmp_path / "corpus.sqlite", _corpus())
    before = path.read_bytes()
    monkeypatch.setattr(store, "_function_row", lambda i, f, *rest: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        _write(path, _corpus())
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["corpus.sqlite"]


def _damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_drop_last_page(path):
    data = path.read_bytes()
    path.write_bytes(data[:-4096])


def _damage_garbage(path):
    path.write_bytes(b"this is not a database" * 100)


def _damage_empty(path):
    path.write_bytes(b"")


def _damage_schema(path):
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    db.close()


def _damage_tables(path):
    path.unlink()
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE other (x)")
    db.close()


@pytest.mark.parametrize(("damage", "message"), [
    (_damage_truncate, "truncated or damaged|not a readable SQLite database"),
    (_damage_drop_last_page, "truncated or damaged|not a readable SQLite database"),
    (_damage_garbage, "not a readable SQLite database"),
    (_damage_empty, "truncated"),
    (_damage_schema, "schema version 999"),
    (_damage_tables, "not a corpus index"),
    (lambda p: p.unlink(), "no such file"),
])
def test_damaged_or_other_schema_is_a_store_error_naming_file_and_rebuild(tmp_path, damage, message):
    path = _write(tmp_path / "corpus.sqlite", _corpus())
    damage(path)
    with pytest.raises(StoreError, match=message) as info:
        CorpusIndex.open(path, exp="phase0")
    assert str(path) in str(info.value)
    assert "python -m jepa.prepare --exp phase0 --force" in str(info.value)
