"""Churn of functions in git checkouts: hand-counted histories, and agreement with ``git log -L``."""

import itertools
import os
import shutil
import subprocess

import pytest

from jepa.corpus import churn
from jepa.corpus.churn import function_churn, is_git_checkout
from jepa.corpus.extract import extract_functions

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="churn needs the git executable")


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    """A fresh CI machine has no git identity or config: give one, and ignore the user's config."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Churn Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "churn@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")


class Repo:
    """A scratch repository; every commit gets a later date, so history order is deterministic."""

    def __init__(self, path):
        self.path = path
        self.clock = itertools.count(1_700_000_000, 60)
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q")
        self.git("symbolic-ref", "HEAD", "refs/heads/main")

    def git(self, *args):
        t = next(self.clock)
        env = {"GIT_AUTHOR_DATE": f"{t} +0000", "GIT_COMMITTER_DATE": f"{t} +0000"}
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True, env={**os.environ, **env}).stdout

    def commit(self, message, files):
        """Write ``files`` (path -> text), stage them and commit."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", str(target.relative_to(self.path)))
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def functions_of(checkout, path):
    found, skipped = extract_functions((checkout / path).read_bytes(), repository="r", path=path)
    assert skipped is None
    return found


def git_log_l(checkout, f, *, renames=True):
    """The reference: commits ``git log -L start,end:path`` lists for one function."""
    out = subprocess.run(["git", "-C", str(checkout), "log", *([] if renames else ["--no-renames"]),
                          f"-L{f.start_line},{f.end_line}:{f.path}", "--format=%H", "-s"],
                         check=True, capture_output=True, text=True).stdout
    return len(set(out.split()))


def churn_by_name(checkout, path, **kwargs):
    functions = functions_of(checkout, path)
    counts = function_churn(checkout, functions, **kwargs)
    return {f.qualname: c for f, c in zip(functions, counts)}, functions, counts


A = "def a():\n    x = 1\n    return x\n"
B = "def b():\n    y = 2\n    return y\n"
HEADER = "import os\n\n\n"


def linear_history(repo):
    """Each step says which functions it touches (hand count: a 4, b 3, c 1)."""
    repo.commit("c1 add a and b", {"mod.py": A + "\n" + B})                       # a, b
    a2 = A.replace("x = 1", "x = 10")
    repo.commit("c2 edit a's body", {"mod.py": a2 + "\n" + B})                     # a
    repo.commit("c3 insert lines above both", {"mod.py": HEADER + a2 + "\n" + B})  # -
    b4 = B.replace("y = 2", "y = 20")
    repo.commit("c4 edit b", {"mod.py": HEADER + a2 + "\n" + b4})                  # b
    a5 = "def a():\n    return 10\n"
    repo.commit("c5 delete a line of a", {"mod.py": HEADER + a5 + "\n" + b4})      # a
    repo.commit("c6 other file only", {"other.py": "def z():\n    pass\n"})        # -
    c = "\n\ndef c():\n    return 3\n"
    repo.commit("c7 append c after b", {"mod.py": HEADER + a5 + "\n" + b4 + c})    # c
    b8 = "def b():\n    return y\n"
    repo.commit("c8 delete b's middle line", {"mod.py": HEADER + a5 + "\n" + b8 + c})  # b
    repo.commit("c9 delete the blank line between a and b", {"mod.py": HEADER + a5 + b8 + c})  # -
    a10 = 'def a():\n    """Doc."""\n    return 10\n'
    repo.commit("c10 docstring inside a", {"mod.py": HEADER + a10 + b8 + c})       # a


def test_hand_counted_history_matches_git_log_l(tmp_path):
    repo = Repo(tmp_path / "repo")
    linear_history(repo)
    counts, functions, raw = churn_by_name(repo.path, "mod.py")
    assert counts == {"a": 4, "b": 3, "c": 1}
    assert raw == [git_log_l(repo.path, f) for f in functions]
    assert is_git_checkout(repo.path)


def test_merges_follow_git_log_l(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.commit("base", {"mod.py": A + "\n" + B})
    repo.git("checkout", "-q", "-b", "topic")
    repo.commit("topic edits b", {"mod.py": A + "\n" + B.replace("y = 2", "y = 3")})
    repo.git("checkout", "-q", "main")
    repo.commit("main edits a", {"mod.py": A.replace("x = 1", "x = 5") + "\n" + B})
    repo.git("merge", "-q", "--no-edit", "topic")  # clean merge: counts for neither function
    repo.git("checkout", "-q", "-b", "topic2", "HEAD~2")  # from base
    repo.commit("topic2 edits a", {"mod.py": A.replace("x = 1", "x = 6") + "\n" + B})
    repo.git("checkout", "-q", "main")
    merge = subprocess.run(["git", "-C", str(repo.path), "merge", "-q", "--no-edit", "topic2"],
                           capture_output=True)
    assert merge.returncode != 0  # both sides edited a: resolve by hand (the merge touches a)
    (repo.path / "mod.py").write_text(A.replace("x = 1", "x = 7") + "\n" + B.replace("y = 2", "y = 3"))
    repo.git("commit", "-qam", "resolve")
    counts, functions, raw = churn_by_name(repo.path, "mod.py")
    # a: base, main edits a, topic2 edits a, the resolving merge; b: base, topic edits b
    assert counts == {"a": 4, "b": 2}
    assert raw == [git_log_l(repo.path, f) for f in functions]


def test_renames_followed_like_git_log_l(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.commit("old path", {"old.py": A + "\n" + B})
    repo.commit("edit a", {"old.py": A.replace("x = 1", "x = 2") + "\n" + B})
    (repo.path / "pkg").mkdir()
    repo.git("mv", "old.py", "pkg/new.py")
    repo.commit("move into pkg and edit b",
                {"pkg/new.py": A.replace("x = 1", "x = 2") + "\n" + B.replace("y = 2", "y = 4")})
    followed, functions, raw = churn_by_name(repo.path, "pkg/new.py")
    assert followed == {"a": 2, "b": 2}  # the rename edits b only; a's history continues in old.py
    assert raw == [git_log_l(repo.path, f) for f in functions]
    not_followed, _, raw = churn_by_name(repo.path, "pkg/new.py", follow_renames=False)
    assert not_followed == {"a": 1, "b": 1}  # the rename looks like the file's creation
    assert raw == [git_log_l(repo.path, f, renames=False) for f in functions]


def test_untracked_dirty_and_subdirectory(tmp_path):
    repo = Repo(tmp_path / "repo")
    linear_history(repo)
    repo.commit("a package", {"pkg/util.py": A})
    (repo.path / "new.py").write_text(B)  # untracked
    mod = repo.path / "mod.py"  # uncommitted: lines inserted above, and a new function at the end
    mod.write_text("# uncommitted\n\n" + mod.read_text() + "\n\ndef fresh():\n    return 0\n")
    counts, _, _ = churn_by_name(repo.path, "mod.py")
    assert counts == {"a": 4, "b": 3, "c": 1, "fresh": 0}
    assert function_churn(repo.path, functions_of(repo.path, "new.py")) == [None]
    # a subdirectory of the work tree is a checkout; paths are relative to it
    sub = functions_of(repo.path / "pkg", "util.py")
    assert is_git_checkout(repo.path / "pkg") and function_churn(repo.path / "pkg", sub) == [1]


def test_not_a_repository_gives_none(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "m.py").write_text(A + "\n" + B)
    functions = functions_of(plain, "m.py")
    assert not is_git_checkout(plain)
    assert function_churn(plain, functions) == [None, None]
    empty = Repo(tmp_path / "empty")  # a repository without any commit
    (empty.path / "m.py").write_text(A)
    assert function_churn(empty.path, functions_of(empty.path, "m.py")) == [None]


def test_errors_name_the_problem(tmp_path, monkeypatch):
    repo = Repo(tmp_path / "repo")
    repo.commit("c1", {"mod.py": A})
    (f,) = functions_of(repo.path, "mod.py")
    bad = type(f)(**{**f.__dict__, "start_line": 3, "end_line": 2})
    with pytest.raises(ValueError, match="line span 3..2"):
        function_churn(repo.path, [bad])
    monkeypatch.setattr(churn.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs the `git` executable"):
        function_churn(repo.path, [f])


def _random_edit(rng, lines, fresh):
    """1-3 random insertions, deletions or replacements (blank and repeated lines included)."""
    lines = list(lines)
    for _ in range(rng.randint(1, 3)):
        pos, op = rng.randint(0, len(lines)), rng.random()
        if op < 0.4 or len(lines) < 3:
            lines[pos:pos] = [rng.choice(["", "pass", next(fresh)]) for _ in range(rng.randint(1, 4))]
        elif op < 0.7:
            del lines[pos:pos + rng.randint(1, 3)]
        else:
            lines[pos:pos + rng.randint(1, 3)] = [next(fresh) for _ in range(rng.randint(1, 3))]
    return lines


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_histories_agree_with_git_log_l(tmp_path, seed):
    """Edits, branches merged back (clean, conflicting, amended 'evil' merges) and renames."""
    import random
    from collections import namedtuple

    rng, fresh = random.Random(seed), (f"line {k}" for k in itertools.count())
    repo, name = Repo(tmp_path / "repo"), "f.py"
    repo.commit("init", {name: "\n".join(next(fresh) for _ in range(30)) + "\n"})

    def rewrite(edit=True):
        lines = (repo.path / name).read_text().splitlines()
        (repo.path / name).write_text("\n".join(_random_edit(rng, lines, fresh) if edit else lines) + "\n")
        repo.git("add", name)

    for step in range(16):
        kind = rng.random() if step >= 2 else 1.0  # main~2 exists from step 2 on
        if kind < 0.35:  # a branch from a recent ancestor, merged back
            repo.git("checkout", "-q", "-b", f"b{step}", f"main~{rng.randint(0, 2)}")
            if (repo.path / name).exists():
                for _ in range(rng.randint(1, 2)):
                    rewrite()
                    repo.git("commit", "-q", "--allow-empty", "-m", "branch edit")
            repo.git("checkout", "-q", "main")
            merge = ["git", "-C", str(repo.path), "merge", "-q", "--no-ff", "--no-edit", f"b{step}"]
            if subprocess.run(merge, capture_output=True).returncode:
                repo.git("checkout", rng.choice(["--ours", "--theirs"]), "--", name)
                rewrite(edit=rng.random() < 0.5)
                repo.git("commit", "-q", "-m", "resolve")
            elif rng.random() < 0.3:
                rewrite()
                repo.git("commit", "-q", "--amend", "--no-edit")
        elif kind < 0.45:
            repo.git("mv", name, f"g{step}.py")
            name = f"g{step}.py"
            if rng.random() < 0.5:
                rewrite()
            repo.git("commit", "-q", "-m", "rename")
        else:
            rewrite()
            repo.git("commit", "-q", "--allow-empty", "-m", "edit")
    n = len((repo.path / name).read_text().splitlines())
    Span = namedtuple("Span", "path qualname start_line end_line")
    spans = [Span(name, "span", s, min(n, s + rng.randint(0, 8)))
             for s in (rng.randint(1, n) for _ in range(12))]
    for renames in (True, False):
        counts = function_churn(repo.path, spans, follow_renames=renames)
        assert counts == [git_log_l(repo.path, s, renames=renames) for s in spans]
