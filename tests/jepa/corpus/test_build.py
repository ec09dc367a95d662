"""Sources, de-duplication and the repository split (synthetic checkouts and real distributions)."""

import pytest

from jepa.corpus.build import build_corpus, split_repositories
from jepa.corpus.sources import directory_functions, installed_functions


def _write_repos(root, n_repos=12):
    """Checkouts repo00..: distinct functions each, one body shared by all, one duplicated within."""
    for r in range(n_repos):
        pkg = root / f"repo{r:02d}" / "pkg"
        pkg.mkdir(parents=True)
        defs = [f"def f{r}_{i}(x):\n    y = x + {r * 100 + i}\n    return y * {i}\n" for i in range(3 + r)]
        defs.append("def shared(x):\n    y = x  +  1\n    return y\n")  # identical in every repo
        defs.append(f"def twin(x):\n    z = x - {r}\n    return z\n")
        defs.append(f"def twin2(x):\n    z = x - {r}\n\n    return z\n")  # duplicate within the repo
        (pkg / "mod.py").write_text("\n\n".join(defs), encoding="utf-8")
        (pkg / "broken.py").write_text("def bad(:\n    pass\n", encoding="utf-8")
        (pkg / "latin.py").write_bytes(b"def g():\n    return '\xe9'\n")
        venv = root / f"repo{r:02d}" / ".venv" / "lib"
        venv.mkdir(parents=True)
        (venv / "ignored.py").write_text("def ignored():\n    return 1\n", encoding="utf-8")


def test_directory_source_reports_skipped_files_and_ignores_venvs(tmp_path):
    _write_repos(tmp_path, 3)
    report = directory_functions(tmp_path, minimum=7)
    assert {s.path for s in report.skipped} == {"pkg/broken.py", "pkg/latin.py"}
    assert len(report.skipped) == 6 and report.files == 9
    assert report.dropped_repositories == {"repo00": 6}  # 3 + shared + twin + twin2 < 7
    assert all("ignored" not in f.qualname for f in report.functions)
    capped = directory_functions(tmp_path, cap=4)
    assert capped.capped_repositories == {"repo00": 6, "repo01": 7, "repo02": 8}
    assert [len([f for f in capped.functions if f.repository == r]) for r in ("repo00", "repo01")] == [4, 4]


def test_dedup_counts_and_no_repository_or_body_in_two_splits(tmp_path):
    _write_repos(tmp_path, 12)
    functions = directory_functions(tmp_path).functions
    corpus = build_corpus(functions, min_body_lines=2, seed=0)
    assert corpus.duplicates_across == 11 and corpus.duplicates_within == 12
    assert corpus.duplicates_removed == 23
    assert len(corpus.functions) == len(functions) - 23
    _check_split(corpus)
    counts = corpus.counts()
    assert sum(c["repositories"] for c in counts.values()) == 12
    assert all(c["repositories"] > 0 for c in counts.values())


def _check_split(corpus):
    seen_repos, seen_bodies = {}, {}
    for name in ("train", "val", "test"):
        for f in corpus.split(name):
            assert seen_repos.setdefault(f.repository, name) == name
            assert " ".join(f.body.split()) not in seen_bodies
            seen_bodies[" ".join(f.body.split())] = name


def test_split_is_deterministic_and_order_independent(tmp_path):
    _write_repos(tmp_path, 12)
    functions = directory_functions(tmp_path).functions
    a = build_corpus(functions, seed=3)
    b = build_corpus(list(reversed(functions)), seed=3)
    assert a.split_of == b.split_of and a.functions == b.functions
    assert a.summary() == b.summary()


def test_split_fractions_are_reached_with_many_equal_repositories():
    split = split_repositories({f"r{i}": 10 for i in range(100)}, (0.8, 0.1, 0.1), seed=1)
    assert [list(split.values()).count(s) for s in ("train", "val", "test")] == [80, 10, 10]
    assert split != split_repositories({f"r{i}": 10 for i in range(100)}, seed=2)
    with pytest.raises(ValueError, match="summing to 1"):
        split_repositories({"a": 1}, (0.5, 0.1, 0.1))


def test_real_installed_slice_split_by_repository():
    names = ["pyyaml", "pytest", "requests", "markdown", "jinja2"]
    report = installed_functions(names=names, cap=200, minimum=50)
    sizes = {}
    for f in report.functions:
        sizes[f.repository] = sizes.get(f.repository, 0) + 1
    assert set(sizes) == set(names) and max(sizes.values()) <= 200
    assert all(f.separator.strip() == "" and f.signature.lstrip().startswith(("def", "async", "@"))
               for f in report.functions)
    corpus = build_corpus(report.functions, min_body_lines=1, max_body_tokens=512, seed=0)
    _check_split(corpus)
    assert build_corpus(report.functions, min_body_lines=1, max_body_tokens=512, seed=0).split_of == corpus.split_of
    with pytest.raises(ValueError, match="not installed"):
        installed_functions(names=["surely-not-installed-dist"])


def test_vendored_copies_are_left_out_by_every_source(tmp_path):
    from jepa.corpus.sources import directory_functions

    body = "def f(x):\n    y = x + 1\n    return y\n"
    for rel in ("proj/pkg/core.py", "proj/pkg/_vendor/requests/api.py", "proj/extern/six.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(body)
    report = directory_functions(tmp_path, minimum=0)
    assert [f.path for f in report.functions] == ["pkg/core.py"] and report.files == 1
