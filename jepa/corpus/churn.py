"""Churn of functions in git checkouts: how many commits touched each function's lines.

**Definition** (that of ``git log -L``). The churn of a function whose text spans lines ``a..b``
(1-based, inclusive, as :class:`~jepa.corpus.extract.Function` records them) of ``path`` is the
number of distinct commits that ``git log -L a,b:path`` lists. Walking back from ``HEAD``, a commit
counts when its diff of ``path`` (``-U0`` hunks) has a hunk that overlaps the tracked lines (a pure
deletion counts when it falls strictly inside them); the tracked lines are then mapped to the
parent's line numbers: each overlapping hunk is replaced by the lines it replaced, the other
tracked lines shift by the lines added or removed above them. So the range follows the function
through edits above it, and the commit that created the file counts for every function. At a merge,
the range goes to the first parent whose diff leaves it untouched (the merge does not count), else
to every parent (the merge counts). A file created by a rename (git's similarity >= 50 %, deleted
sources only, as ``git log -L`` looks for it) is followed into its old path unless
``follow_renames=False`` (then equal to ``git log --no-renames -L``).

**Algorithm.** ``git log -L`` walks the whole history once per function (0.1 s per function on
psf/requests, 6.5k commits: ~10 functions/s). Here one
``git log --full-history --parents --topo-order -m -p -U0 -- path`` per *file* (plus one more per
rename followed) gives every commit that changed the file and every merge with its per-parent
diffs; :func:`function_churn` then replays git's ``line-log.c`` range mapping
(``range_set_map_across_diff``) and merge rule for all functions of the file at once, children
before parents: ~90 functions/s on psf/requests, ~150 on pallets/click, one worker, counts equal to
``git log -L`` for every function (``benchmarks/churn.py``). The diff options are pinned to the diff
``line-log.c`` computes (Myers, no indent heuristic, no textconv, as text) and user configuration
that would change git's output is overridden. A commit-graph with changed-path Bloom filters
(``git commit-graph write --reachable --changed-paths``, not written here) makes both ~2x faster.

Where git itself changed: the range algebra is that of current git, after SZEDER Gabor's 2025 fix
of ``range_set_difference`` / ``diff_ranges_filter_touched`` for a piece that ends where a hunk
starts; it matters only for a range split into pieces (after merges), where older git (2.39 here)
can differ or loop (never seen in the tests). Renames at merge commits are followed when exactly one parent lacks the file.

**Working tree.** Line spans refer to the file on disk. A tracked file with uncommitted changes is
first mapped onto ``HEAD`` through ``git diff HEAD`` (same mapping, nothing counted), so a function
that exists only in the working tree has churn 0. Shallow clones count only the commits present
(the shallow boundary looks like the file's creation); a warning is logged.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jepa.corpus.extract import Function

__all__ = ["function_churn", "is_git_checkout"]

logger = logging.getLogger(__name__)

_CONFIG = ("-c", "core.quotePath=false", "-c", "log.follow=false", "-c", "log.showRoot=true",
           "-c", "log.showSignature=false", "-c", "log.diffMerges=separate", "-c", "color.ui=false")
# the diff line-log.c computes internally: Myers, no indent heuristic, no context, raw text
_DIFF_OPTIONS = ("--no-ext-diff", "--no-textconv", "--no-color", "--text", "--no-indent-heuristic",
                 "--diff-algorithm=myers", "--inter-hunk-context=0", "--unified=0", "--full-index")
_DIFF = ("--no-renames", *_DIFF_OPTIONS)
_MAX_PATHSPEC_CHARS = 1_000_000  # keep command lines well below the kernel's limit (ARG_MAX)
_LOG = ("log", "--full-history", "--parents", "--topo-order", "-m", "--patch",
        "--format=%x00%H %P", *_DIFF)
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")

_Ranges = list[tuple[int, int]]
"""A set of lines as sorted, disjoint, non-adjacent, non-empty half-open 0-based intervals."""


def _git(cwd: Path, *args: str, check: bool = True, stdin: bytes | None = None
         ) -> subprocess.CompletedProcess:
    """Run ``git -C cwd args`` with pathspecs read literally; raise ``RuntimeError`` on failure."""
    executable = shutil.which("git")
    if executable is None:
        raise RuntimeError("churn needs the `git` executable, which is not on PATH; install git "
                           "(e.g. `apt-get install git`) or leave churn out")
    env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    done = subprocess.run([executable, "-C", str(cwd), *_CONFIG, *args], capture_output=True,
                          env=env, input=stdin)
    if check and done.returncode != 0:
        raise RuntimeError(f"`git {' '.join(args[:6])}{' ...' if len(args) > 6 else ''}` failed in "
                           f"{cwd} (exit {done.returncode}): "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done


def is_git_checkout(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory inside the work tree of a git repository.

    A subdirectory of a repository counts (its churn comes from the enclosing repository).

    Raises:
        RuntimeError: git is missing, or git fails for another reason than "not a git repository"
            (for instance a repository owned by another user, which git refuses as unsafe).
    """
    path = Path(path)
    if not path.is_dir():
        return False
    done = _git(path, "rev-parse", "--is-inside-work-tree", check=False)
    if done.returncode == 0:
        return done.stdout.strip() == b"true"
    message = done.stderr.decode(errors="replace")
    if "not a git repository" in message:
        return False
    raise RuntimeError(f"git cannot read {path}: {message.strip()}")


# --------------------------------------------------------------------------- line-log range algebra
@dataclass
class _Diff:
    """Hunks of one file diff, sorted: parent and target sides as 0-based half-open line intervals."""

    ps: list[int]
    pe: list[int]
    ts: list[int]
    te: list[int]
    shift: list[int] = field(init=False)  # shift[k]: lines (parent - target) over the first k hunks

    def __post_init__(self):
        self.shift = [0]
        for a, b, c, d in zip(self.ps, self.pe, self.ts, self.te):
            self.shift.append(self.shift[-1] + (b - a) - (d - c))


def _union(a: _Ranges, b: _Ranges) -> _Ranges:
    """``range_set_union``: merge, dropping empty intervals and joining overlapping/adjacent ones."""
    if not b and len(a) == 1:
        return a if a[0][0] < a[0][1] else []
    out: _Ranges = []
    for s, e in sorted(a + b):
        if s == e:
            continue
        if out and out[-1][1] >= s:
            if out[-1][1] < e:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _map_across(ranges: _Ranges, diff: _Diff) -> tuple[bool, _Ranges]:
    """``range_set_map_across_diff`` of git's ``line-log.c``: (whether a hunk touched, parent ranges).

    A hunk touches the ranges when its target side overlaps them (an empty target side, a pure
    deletion, touches when strictly inside). Touched target sides are cut out and replaced by their
    parent sides; the rest shifts by the lines the hunks above it added or removed.
    """
    if not diff.ts:
        return False, ranges
    touched: list[int] = []
    for s, e in ranges:  # hunks overlapping [s, e): te > s and ts < e, a contiguous slice
        lo = bisect.bisect_right(diff.te, s)
        hi = bisect.bisect_left(diff.ts, e)
        for i in range(max(lo, touched[-1] + 1 if touched else 0), hi):
            touched.append(i)
    if not touched:
        kept = ranges
    else:  # range_set_difference(ranges, touched targets)
        kept, j = [], 0
        for s, e in ranges:
            while s < e:
                while j < len(touched) and s >= diff.te[touched[j]]:
                    j += 1
                if j >= len(touched) or e < diff.ts[touched[j]]:
                    kept.append((s, e))
                    break
                ts, te = diff.ts[touched[j]], diff.te[touched[j]]
                if s >= ts:
                    s = te
                elif e > ts:
                    kept.append((s, ts))
                    s = te
                else:  # e == ts: nothing of [s, e) inside this hunk
                    kept.append((s, e))
                    break
    shifted = [(s + diff.shift[k], e + diff.shift[k])
               for s, e in kept for k in (bisect.bisect_right(diff.ts, s),)]
    return bool(touched), _union(shifted, [(diff.ps[i], diff.pe[i]) for i in touched])


# --------------------------------------------------------------------------- git log parsing
_ABSENT = "absent"  # blob of a path that does not exist in a commit


@dataclass
class _Block:
    old: str | None  # parent-side blob (_ABSENT for a creation); None when git printed no index line
    new: str | None
    diff: _Diff


@dataclass
class _Commit:
    sha: str
    parents: tuple[str, ...]  # rewritten by --parents (path-limited history)
    blocks: list[_Block] = field(default_factory=list)


def _blob(hexsha: bytes) -> str:
    return _ABSENT if not hexsha.strip(b"0") else hexsha.decode()


def _parse_patch(lines: list[bytes], start: int) -> tuple[_Block, int]:
    """Parse one ``diff --git`` block from ``lines[start]``; return it and the next line index."""
    old = new = None
    ps: list[int] = []
    pe: list[int] = []
    ts: list[int] = []
    te: list[int] = []
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if line.startswith((b"\x00", b"diff --git ")):
            break
        if line.startswith(b"@@ "):
            m = _HUNK.match(line)
            if m is None:
                raise RuntimeError(f"unparsable hunk header from git: {line[:80]!r}")
            a, b = int(m[1]), int(m[2] if m[2] is not None else 1)
            c, d = int(m[3]), int(m[4] if m[4] is not None else 1)
            a0, c0 = (a - 1 if b else a), (c - 1 if d else c)  # unified counts 1-based, 0 = "after"
            ps.append(a0)
            pe.append(a0 + b)
            ts.append(c0)
            te.append(c0 + d)
        elif not ps and line.startswith(b"index "):
            sides = line.split()[1].split(b"..")
            old, new = _blob(sides[0]), _blob(sides[1])
        i += 1
    return _Block(old, new, _Diff(ps, pe, ts, te)), i


def _parse_log(out: bytes) -> list[_Commit]:
    """Commits of ``git log --format=%x00%H %P -m -p`` output, in output order (one per commit)."""
    commits: list[_Commit] = []
    lines = out.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"\x00"):
            shas = line[1:].decode().split()
            if not commits or commits[-1].sha != shas[0]:  # -m repeats the header per parent
                commits.append(_Commit(shas[0], tuple(shas[1:])))
            i += 1
        elif line.startswith(b"diff --git "):
            if not commits:
                raise RuntimeError("git log printed a diff before any commit header")
            block, i = _parse_patch(lines, i)
            commits[-1].blocks.append(block)
        else:
            i += 1
    return commits


# --------------------------------------------------------------------------- the walk
@dataclass
class _Repo:
    root: Path
    follow_renames: bool


def _find_rename(repo: _Repo, parent: str, commit: str, path: str) -> tuple[str, _Diff] | None:
    """The path that ``commit`` renamed into ``path`` (relative to ``parent``) and the rename's diff.

    As ``line-log.c``: rename sources are the files ``commit`` deleted, the only destination is
    ``path``; git's default similarity threshold (50 %) applies.
    """
    deleted = _git(repo.root, "diff-tree", "-r", "-z", "--no-renames", "--diff-filter=D",
                   "--name-only", parent, commit).stdout.split(b"\x00")
    deleted = [d.decode("utf-8", "surrogateescape") for d in deleted if d]
    if not deleted:
        return None
    pathspec = [path, *deleted]
    if sum(len(d) + 1 for d in deleted) > _MAX_PATHSPEC_CHARS:
        logger.warning("%s: commit %s deletes %d files, too many to name; looking for the rename "
                       "of %s among all its changes", repo.root, commit[:12], len(deleted), path)
        pathspec = []
    status = _git(repo.root, "diff-tree", "-r", "-z", "-M", "--name-status", parent, commit,
                  "--", *pathspec).stdout.split(b"\x00")
    k = 0
    while k < len(status) - 1:  # "X\0path\0", or "R<score>\0old\0new\0" for a rename
        kind, k = status[k], k + (3 if status[k][:1] in (b"R", b"C") else 2)
        if kind[:1] == b"R" and status[k - 1].decode("utf-8", "surrogateescape") == path:
            source = status[k - 2].decode("utf-8", "surrogateescape")
            patch = _git(repo.root, "diff-tree", "-r", "-M", "-p", *_DIFF_OPTIONS, parent, commit,
                         "--", path, source).stdout.split(b"\n")
            start = next(n for n, line in enumerate(patch) if line.startswith(b"diff --git "))
            return source, _parse_patch(patch, start)[0].diff
    return None


def _real_parent_for_creation(repo: _Repo, commit: _Commit, path: str) -> str | None:
    """The one real parent of ``commit`` lacking ``path`` (for a rename check), or None if ambiguous."""
    parents = _git(repo.root, "rev-parse", f"{commit.sha}^@").stdout.decode().split()
    if len(parents) <= 1:
        return parents[0] if parents else None
    query = "".join(f"{p}:{path}\n" for p in parents).encode("utf-8", "surrogateescape")
    answers = _git(repo.root, "cat-file", "--batch-check", stdin=query).stdout.split(b"\n")
    lacking = [p for p, answer in zip(parents, answers) if answer.endswith(b" missing")]
    return lacking[0] if len(lacking) == 1 else None


def _walk(repo: _Repo, path: str, tip: str, initial: dict[int, _Ranges],
          touched_by: list[set[str]], jobs: list[tuple[str, str, dict[int, _Ranges]]]) -> None:
    """Replay ``git log -L`` for the ranges ``initial`` (function index -> ranges) of ``path`` at ``tip``.

    Adds each counted commit to ``touched_by[function]``; renames found append (old path, parent
    commit, ranges there) to ``jobs``.
    """
    out = _git(repo.root, *_LOG, tip, "--", path).stdout
    commits = _parse_log(out)
    if not commits:
        return
    blob: dict[str, str] = {}
    for c in reversed(commits):  # parents before children: the path's blob at every commit
        known = next((b.new for b in c.blocks if b.new is not None), None)
        blob[c.sha] = known if known is not None else (blob[c.parents[0]] if c.parents else _ABSENT)
    state: dict[str, dict[int, _Ranges]] = {commits[0].sha: initial}
    renamed: dict[tuple[str, str], dict[int, _Ranges]] = defaultdict(dict)  # (old path, commit)
    for c in commits:
        ranges = state.pop(c.sha, None)
        if not ranges:
            continue
        by_old = {b.old: b.diff for b in c.blocks}
        targets: list[tuple[str, str] | None] = []  # (path, commit) receiving the ranges, per parent
        diffs: list[_Diff] = []
        for p in c.parents or (None,):
            old = blob[p] if p is not None else _ABSENT
            target = (path, p) if p is not None else None
            if old == blob[c.sha]:
                diff = _Diff([], [], [], [])
            elif old in by_old:
                diff = by_old[old]
            else:
                raise RuntimeError(f"git log of {path}: commit {c.sha} has no diff against parent "
                                   f"{p} (blob {old}); cannot replay its line ranges")
            if old == _ABSENT and repo.follow_renames:
                real = _real_parent_for_creation(repo, c, path)
                found = _find_rename(repo, real, c.sha, path) if real else None
                if found is not None:
                    logger.debug("%s: %s renamed %s -> %s", repo.root, c.sha[:12], found[0], path)
                    target, diff = (found[0], real), found[1]
            targets.append(target)
            diffs.append(diff)

        def give(target: tuple[str, str] | None, f: int, parent_ranges: _Ranges) -> None:
            if target is None or not parent_ranges:
                return
            into = state.setdefault(target[1], {}) if target[0] == path else renamed[target]
            into[f] = _union(into[f], parent_ranges) if f in into else parent_ranges

        if not diffs[0].ts:  # the first parent's diff leaves every range untouched: follow it
            if targets[0] is not None and targets[0][0] == path and targets[0][1] not in state:
                state[targets[0][1]] = ranges  # the usual case, handed over whole
            else:
                for f, rs in ranges.items():
                    give(targets[0], f, rs)
            continue
        for f, rs in ranges.items():  # git: the first parent leaving rs untouched takes it alone
            mapped = []
            for target, diff in zip(targets, diffs):
                touched, parent_ranges = _map_across(rs, diff)
                if not touched:
                    give(target, f, parent_ranges)
                    break
                mapped.append(parent_ranges)
            else:  # every parent's diff touches rs: the commit counts, rs goes to every parent
                touched_by[f].add(c.sha)
                for target, parent_ranges in zip(targets, mapped):
                    give(target, f, parent_ranges)
    jobs.extend((old_path, commit, ranges) for (old_path, commit), ranges in renamed.items())


def _file_churn(repo: _Repo, path: str, spans: list[tuple[int, int]], dirty: bool) -> list[int]:
    """Churn of the line spans (1-based inclusive) of one tracked file of ``repo``."""
    initial = {f: [(start - 1, end)] for f, (start, end) in enumerate(spans)}
    if dirty:  # working tree -> HEAD coordinates, nothing counted
        patch = _git(repo.root, "diff", *_DIFF, "HEAD", "--", path).stdout.split(b"\n")
        start = next((n for n, line in enumerate(patch) if line.startswith(b"diff --git ")), None)
        if start is not None:
            diff = _parse_patch(patch, start)[0].diff
            initial = {f: _map_across(rs, diff)[1] for f, rs in initial.items()}
    touched_by: list[set[str]] = [set() for _ in spans]
    jobs = [(path, "HEAD", {f: rs for f, rs in initial.items() if rs})]
    seen: set[tuple[str, str, tuple]] = set()
    while jobs:
        job_path, tip, ranges = jobs.pop()
        key = (job_path, tip, tuple(sorted((f, tuple(rs)) for f, rs in ranges.items())))
        if ranges and key not in seen:
            seen.add(key)
            _walk(repo, job_path, tip, ranges, touched_by, jobs)
    return [len(s) for s in touched_by]


def function_churn(checkout: str | os.PathLike, functions: Sequence[Function], *,
                   follow_renames: bool = True, workers: int = 1) -> list[int | None]:
    """Churn of each function: the number of distinct commits that touched its current lines.

    See the module docstring for the exact definition (that of ``git log -L start,end:path``).

    Args:
        checkout: the directory the functions' paths are relative to (a repository's work tree or
            a subdirectory of one).
        functions: functions of files below ``checkout`` (``path``, ``start_line``, ``end_line``
            are used; lines 1-based, inclusive).
        follow_renames: follow a file into the path it was renamed from, as ``git log -L`` does;
            ``False`` equals ``git log --no-renames -L``.
        workers: files processed in parallel (threads, each running its own git process).

    Returns:
        One count per function, in order; ``None`` for every function when ``checkout`` is not in
        a git work tree or its ``HEAD`` has no commit, and for a function whose file is not a
        regular file tracked in ``HEAD`` (untracked, ignored, only staged, a symlink, in a
        submodule).

    Raises:
        ValueError: a function whose lines are not ``1 <= start_line <= end_line``.
        RuntimeError: git is missing, or a git command fails (the message carries git's error).
    """
    checkout = Path(checkout)
    for f in functions:
        if not 1 <= f.start_line <= f.end_line:
            raise ValueError(f"{f.path}::{f.qualname}: line span {f.start_line}..{f.end_line} is "
                             "not 1-based with start_line <= end_line")
    result: list[int | None] = [None] * len(functions)
    if not functions or not is_git_checkout(checkout):
        return result
    if _git(checkout, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0:
        logger.warning("%s: HEAD has no commit; churn is None", checkout)
        return result
    top = _git(checkout, "rev-parse", "--show-toplevel", "--show-prefix", "--is-shallow-repository")
    root_text, prefix, shallow = top.stdout.decode("utf-8", "surrogateescape").split("\n")[:3]
    if shallow == "true":
        logger.warning("%s is a shallow clone: churn counts only the commits it has", checkout)
    repo = _Repo(Path(root_text), follow_renames)
    tracked = set()
    for entry in _git(repo.root, "ls-tree", "-r", "-z", "--full-tree", "HEAD").stdout.split(b"\x00"):
        meta, _, name = entry.partition(b"\t")
        if meta.startswith((b"100644 ", b"100755 ")):
            tracked.add(name.decode("utf-8", "surrogateescape"))
    dirty = {d.decode("utf-8", "surrogateescape") for d in _git(
        repo.root, "diff", "--name-only", "-z", "--no-renames", "HEAD").stdout.split(b"\x00") if d}
    by_file: dict[str, list[int]] = defaultdict(list)
    for k, f in enumerate(functions):
        by_file[prefix + Path(f.path).as_posix()].append(k)
    files = [p for p in by_file if p in tracked]

    def one(path: str) -> list[int]:
        return _file_churn(repo, path, [(functions[k].start_line, functions[k].end_line)
                                        for k in by_file[path]], path in dirty)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for path, counts in zip(files, pool.map(one, files)):
            for k, count in zip(by_file[path], counts):
                result[k] = count
    logger.debug("%s: churn of %d functions in %d tracked files (%d untracked)", checkout,
                 sum(len(by_file[p]) for p in files), len(files), len(by_file) - len(files))
    return result
