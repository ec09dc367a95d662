"""Benchmark problems (MBPP, sanitized MBPP, HumanEval): data directory, download, loaders, splits.

Datasets (never committed to the repo; fetched into a data directory, checked by SHA-256):

- ``mbpp.jsonl``: MBPP, Austin et al., "Program Synthesis with Large Language Models" (2021),
  974 problems, CC-BY-4.0; a copy of google-research ``mbpp/mbpp.jsonl`` kept in
  FormulaMonks/llm-benchmarker-suite.
- ``sanitized-mbpp.json``: the hand-verified 427-problem subset of MBPP, CC-BY-4.0; a copy of
  google-research ``mbpp/sanitized-mbpp.json`` kept in mrigankpawagi/PropertyEval.
- ``HumanEval.jsonl.gz``: HumanEval, Chen et al., "Evaluating Large Language Models Trained on
  Code" (2021), 164 problems, MIT; from openai/human-eval.
- ``MbppPlus.jsonl``, ``HumanEvalPlus.jsonl.gz``, ``HumanEvalPlus-Mini.jsonl.gz``: EvalPlus (Liu et
  al., NeurIPS 2023), Apache-2.0: the problems above with many more test inputs (MBPP+: 399
  problems, ~108 inputs each); loaded by :mod:`graphrepair.data.evalplus`.

The exact upstream commits are in :data:`DATA_FILES`. A data directory is found by
:func:`resolve_data_dir`: an explicit argument (``--data-dir``), else the ``GRAPHREPAIR_DATA``
environment variable, else ``$XDG_CACHE_HOME/graphrepair/data`` (``~/.cache/graphrepair/data``).
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import math
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from harness.cli import InputError
from harness.io import file_sha256

__all__ = [
    "DataError",
    "DATA_FILES",
    "DATASETS",
    "FileSpec",
    "Problem",
    "ensure_file",
    "load_humaneval",
    "load_mbpp",
    "load_problems",
    "load_sanitized_mbpp",
    "resolve_data_dir",
    "SPLIT_LIKE",
    "split_like",
    "split_problems",
]


class DataError(InputError):
    """A dataset file or record that cannot be used (wrong SHA-256, malformed line, unknown name);
    a :class:`ValueError`, and a bad-input error (exit code 2) for the command-line tools."""

ENV_VAR = "GRAPHREPAIR_DATA"
DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Problem:
    """One benchmark problem: a reference program and the tests it passes.

    Attributes:
        task_id: unique id with the dataset as prefix: ``"mbpp/1"``, ``"sanitized-mbpp/2"``,
            ``"humaneval/HumanEval/0"``.
        source: the reference solution program with its imports (MBPP: ``code`` exactly as in the
            file, CRLF line endings and tabs kept; HumanEval: ``prompt + canonical_solution``).
        tests: test snippets; each is executed in the program's global namespace after the program
            and ``setup``, and passes when it raises nothing.
        setup: code run after the program and before the tests (MBPP ``test_setup_code``;
            sanitized MBPP: its ``test_imports`` joined by newlines; HumanEval: the test file).
        dataset: ``"mbpp"``, ``"sanitized-mbpp"``, ``"humaneval"`` or an EvalPlus dataset
            (``"mbpp_plus"``, ``"humaneval_plus"``, ``"humaneval_plus_mini"``;
            :mod:`graphrepair.data.evalplus`).
        test_names: a name per test (``()`` = ``test_0``, ``test_1``, ...; EvalPlus: the input's
            index, ``base_<k>`` / ``plus_<k>``).
        timeout_s: this problem's wall-clock limit per test in seconds (EvalPlus problems: from
            the reference's measured time); ``None`` = the run's ``sandbox.timeout_s``.
        split_key: what :func:`split_problems` hashes (``""`` = ``task_id``): an MBPP+ or
            HumanEval+ problem carries its MBPP / HumanEval id, so that it falls in the split its
            original does.
    """

    task_id: str
    source: str
    tests: tuple[str, ...]
    setup: str = ""
    dataset: str = ""
    test_names: tuple[str, ...] = ()
    timeout_s: float | None = None
    split_key: str = ""


class FileSpec(NamedTuple):
    """What a data file must be: SHA-256 (hex), size in bytes, and the URL it is downloaded from."""

    sha256: str
    size: int
    url: str


DATA_FILES: dict[str, FileSpec] = {
    "mbpp.jsonl": FileSpec(
        "0b5e07b5b40fedd01c57b7c9177b79f8b2eebd72c304c928605d91a7237d2f33",
        563742,
        "https://raw.githubusercontent.com/FormulaMonks/llm-benchmarker-suite/"
        "5d3c8009ab8f5adab4899c34dd203cbf7afcb372/data/mbpp/mbpp.jsonl",
    ),
    "sanitized-mbpp.json": FileSpec(
        "ca95deaa9a01ef0a6f439f88bcf0dd3db3563d22f22aad6cae04ebb9a8d8c8e9",
        255053,
        "https://raw.githubusercontent.com/mrigankpawagi/PropertyEval/"
        "679140cc9111dd2ec3f4afeb3c0663f1ab24112c/sanitized-mbpp.json",
    ),
    "HumanEval.jsonl.gz": FileSpec(
        "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        44877,
        "https://raw.githubusercontent.com/openai/human-eval/"
        "6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz",
    ),
    "MbppPlus.jsonl": FileSpec(
        "08405a4e8764a4941cfe0945d25a956355a0454f364ea902c4020a44e7057973",
        2733811,
        "https://raw.githubusercontent.com/evalplus/evalplus/"
        "767efcc368e0ef16568bba4ee2f1b005e849e8a6/MbppPlus.jsonl",
    ),
    "HumanEvalPlus.jsonl.gz": FileSpec(
        "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
        925932,
        "https://raw.githubusercontent.com/evalplus/humanevalplus_release/"
        "200defce9e3429d28ca215b6dd061c0f7f31c18b/HumanEvalPlus.jsonl.gz",
    ),
    "HumanEvalPlus-Mini.jsonl.gz": FileSpec(
        "91486741f1627101021fbe50523df08eebb5b0bf5e804b633dcd5ca3c14dbd2f",
        57064,
        "https://raw.githubusercontent.com/evalplus/humanevalplus_release/"
        "200defce9e3429d28ca215b6dd061c0f7f31c18b/HumanEvalPlus-Mini.jsonl.gz",
    ),
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory to use (it need not exist yet).

    Args:
        data_dir: an explicit directory (e.g. from ``--data-dir``); wins when given.

    Returns:
        ``data_dir``, else ``$GRAPHREPAIR_DATA``, else ``$XDG_CACHE_HOME/graphrepair/data``
        (``~/.cache/graphrepair/data`` when ``XDG_CACHE_HOME`` is unset or empty).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "graphrepair" / "data"



def _missing_message(name: str, directory: Path, reason: str) -> str:
    spec = DATA_FILES[name]
    return (
        f"data file {name!r} is not in {str(directory)!r} ({reason}). Put {name} "
        f"(sha256 {spec.sha256}, {spec.size} bytes, from {spec.url}) in the directory "
        f"{directory}, or point at a directory that holds it with --data-dir DIR or the "
        f"{ENV_VAR} environment variable."
    )


def ensure_file(
    name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True
) -> Path:
    """Path of a verified data file, downloading it first when it is missing.

    A download goes to a temporary file in the data directory, is checked against
    :data:`DATA_FILES`, and is renamed into place atomically.

    Args:
        name: a key of :data:`DATA_FILES`.
        data_dir: see :func:`resolve_data_dir`.
        download: fetch a missing file from its upstream URL (timeout ``DOWNLOAD_TIMEOUT_S`` s).

    Returns:
        The file's path.

    Raises:
        DataError: ``name`` is unknown, or the file (existing or downloaded) has the wrong SHA-256.
        FileNotFoundError: the file is missing and could not be downloaded (or ``download`` is
            false); the message names the file, the directory, and how to point at another one.
    """
    if name not in DATA_FILES:
        raise DataError(f"unknown data file {name!r}; known files: {sorted(DATA_FILES)}")
    spec = DATA_FILES[name]
    directory = resolve_data_dir(data_dir)
    path = directory / name
    if path.is_file():
        found = file_sha256(path)
        if found != spec.sha256:
            raise DataError(
                f"{path} has SHA-256 {found}, expected {spec.sha256}: the file is corrupt or a "
                f"different version; delete it to download it again, or replace it with the "
                f"file from {spec.url}"
            )
        return path
    if not download:
        raise FileNotFoundError(_missing_message(name, directory, "download disabled"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise FileNotFoundError(
            _missing_message(name, directory, f"cannot write there: {exc}")
        ) from exc
    tmp = Path(tmp_name)
    try:
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(spec.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            ):
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
        except (urllib.error.URLError, OSError) as exc:
            raise FileNotFoundError(
                _missing_message(name, directory, f"download from {spec.url} failed: {exc}")
            ) from exc
        found = file_sha256(tmp)
        if found != spec.sha256:
            raise DataError(
                f"downloaded {spec.url} has SHA-256 {found}, expected {spec.sha256}; "
                f"put a verified copy of {name} in {directory}"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _field(record: object, key: str, kind: type, where: str):
    """``record[key]`` checked to be a ``kind`` (lists: of ``str``); ValueError naming ``where``."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(record).__name__}")
    if key not in record:
        raise DataError(f"{where}: missing key {key!r} (keys: {sorted(record)})")
    value = record[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if ok and kind is list:
        ok = all(isinstance(v, str) for v in value)
    if not ok:
        want = "list of str" if kind is list else kind.__name__
        raise DataError(f"{where}: {key!r} should be {want}, found {value!r:.80}")
    return value


def _read_jsonl(path: Path, opener=open) -> list[tuple[str, dict]]:
    """``(where, record)`` for each non-blank line; ``where`` is ``"path, line N"`` (1-based)."""
    records = []
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                records.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON: {exc}") from exc
    return records


def load_mbpp(data_dir: str | os.PathLike | None = None) -> list[Problem]:
    """MBPP's 974 problems (``mbpp.jsonl``), in file order.

    ``tests`` is ``test_list`` (``challenge_test_list`` is not used); ``setup`` is
    ``test_setup_code``.

    Raises:
        FileNotFoundError, ValueError: see :func:`ensure_file`; ValueError also for a malformed
            record, naming the file and the 1-based line.
    """
    path = ensure_file("mbpp.jsonl", data_dir)
    problems = []
    for where, rec in _read_jsonl(path):
        problems.append(
            Problem(
                task_id=f"mbpp/{_field(rec, 'task_id', int, where)}",
                source=_field(rec, "code", str, where),
                tests=tuple(_field(rec, "test_list", list, where)),
                setup=_field(rec, "test_setup_code", str, where),
                dataset="mbpp",
            )
        )
    return problems


def load_sanitized_mbpp(data_dir: str | os.PathLike | None = None) -> list[Problem]:
    """Sanitized MBPP's 427 problems (``sanitized-mbpp.json``), in file order.

    ``setup`` is ``"\\n".join(test_imports)``.

    Raises:
        FileNotFoundError, ValueError: see :func:`ensure_file`; ValueError also for a malformed
            file or record, naming the file and the 0-based record index.
    """
    path = ensure_file("sanitized-mbpp.json", data_dir)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON array, found {type(records).__name__}")
    problems = []
    for index, rec in enumerate(records):
        where = f"{path}, record {index}"
        problems.append(
            Problem(
                task_id=f"sanitized-mbpp/{_field(rec, 'task_id', int, where)}",
                source=_field(rec, "code", str, where),
                tests=tuple(_field(rec, "test_list", list, where)),
                setup="\n".join(_field(rec, "test_imports", list, where)),
                dataset="sanitized-mbpp",
            )
        )
    return problems


def _humaneval_tests(test: str, entry_point: str, where: str) -> tuple[tuple[str, ...], str]:
    """Split a HumanEval test file into ``(tests, setup)`` (see :func:`load_humaneval`)."""
    try:
        module = ast.parse(test)
    except SyntaxError as exc:
        raise DataError(f"{where}: 'test' does not parse: {exc}") from exc
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1:
        raise DataError(f"{where}: expected one top-level 'def check', found {len(checks)}")
    body = checks[0].body
    if all(isinstance(stmt, ast.Assert) for stmt in body):
        tests = tuple(ast.get_source_segment(test, stmt) for stmt in body)
        return tests, f"{test}\ncandidate = {entry_point}\n"
    return (f"check({entry_point})",), test


def load_humaneval(data_dir: str | os.PathLike | None = None) -> list[Problem]:
    """HumanEval's 164 problems (``HumanEval.jsonl.gz``), in file order.

    ``source`` is ``prompt + canonical_solution``. When every statement of the test file's
    ``check(candidate)`` body is an ``assert``, each becomes one test (its exact source text, still
    calling ``candidate``) and ``setup`` is the test file plus ``"\\ncandidate = ENTRY_POINT\\n"``.
    Otherwise (loops, local variables, imports inside ``check``; 7 problems: HumanEval/32, 38, 44,
    50, 53, 129, 151) there is one test ``"check(ENTRY_POINT)"`` and ``setup`` is the test file.

    Raises:
        FileNotFoundError, ValueError: see :func:`ensure_file`; ValueError also for a malformed
            record, naming the file and the 1-based line.
    """
    path = ensure_file("HumanEval.jsonl.gz", data_dir)
    problems = []
    for where, rec in _read_jsonl(path, opener=gzip.open):
        task_id = _field(rec, "task_id", str, where)
        entry_point = _field(rec, "entry_point", str, where)
        tests, setup = _humaneval_tests(_field(rec, "test", str, where), entry_point, where)
        problems.append(
            Problem(
                task_id=f"humaneval/{task_id}",
                source=_field(rec, "prompt", str, where)
                + _field(rec, "canonical_solution", str, where),
                tests=tests,
                setup=setup,
                dataset="humaneval",
            )
        )
    return problems


def _evalplus(name: str):
    def load(data_dir: str | os.PathLike | None = None) -> list[Problem]:
        from graphrepair.data.evalplus import load_evalplus  # (it imports this module)

        return load_evalplus(name, data_dir)

    load.__doc__ = f"{name}: see :func:`graphrepair.data.evalplus.load_evalplus`."
    return load


DATASETS = {
    "mbpp": load_mbpp,
    "sanitized-mbpp": load_sanitized_mbpp,
    "humaneval": load_humaneval,
    "mbpp_plus": _evalplus("mbpp_plus"),
    "humaneval_plus": _evalplus("humaneval_plus"),
    "humaneval_plus_mini": _evalplus("humaneval_plus_mini"),
}

#: datasets whose problems are split as the problems they extend are: name -> that dataset
SPLIT_LIKE = {"mbpp_plus": "mbpp"}


def load_problems(dataset: str, data_dir: str | os.PathLike | None = None) -> list[Problem]:
    """Load a dataset by name (a key of :data:`DATASETS`).

    Raises:
        DataError: unknown ``dataset`` (the message lists the valid names); see the loaders.
        FileNotFoundError: see :func:`ensure_file`.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[dataset](data_dir)


def split_problems(
    problems: Sequence[Problem],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, list[Problem]]:
    """Split problems into train/val/test by problem, deterministically.

    Problems are ordered by SHA-256 of ``f"{seed}:{key}"`` with ``key`` the problem's
    ``split_key`` or else its ``task_id`` (not Python's salted ``hash``), so
    the split depends only on the seed and the set of task ids, not on the input order. The first
    ``floor(n * f_train + 0.5)`` go to train, the next up to ``floor(n * (f_train + f_val) + 0.5)``
    to val, the rest to test (974 MBPP problems: 779/98/97). Each part is in that hash order.

    Args:
        problems: problems with unique ``task_id``.
        fractions: ``(train, val, test)``, each >= 0, summing to 1.
        seed: selects a different split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        DataError: fractions are not three non-negative numbers summing to 1, or task ids repeat.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise DataError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, "
            f"got {fractions}"
        )
    ids = [p.task_id for p in problems]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DataError(f"split_problems needs unique task ids; repeated: {dup}")

    def key(p: Problem) -> bytes:
        return hashlib.sha256(f"{seed}:{p.split_key or p.task_id}".encode()).digest()

    ordered = sorted(problems, key=key)
    n = len(ordered)
    cut1 = min(n, math.floor(n * fractions[0] + 0.5))  # round half up, not to even
    cut2 = max(cut1, min(n, math.floor(n * (fractions[0] + fractions[1]) + 0.5)))
    return {"train": ordered[:cut1], "val": ordered[cut1:cut2], "test": ordered[cut2:]}


def split_like(problems: Sequence[Problem], reference: dict[str, list[Problem]]) -> dict[str, list[Problem]]:
    """Put each problem in the split of the ``reference`` problem whose ``task_id`` is its
    ``split_key`` (MBPP+ problems where their MBPP originals are), in ``problems``' order.

    Raises:
        DataError: a problem whose ``split_key`` is in no split of ``reference``.
    """
    where = {p.task_id: name for name, probs in reference.items() for p in probs}
    out: dict[str, list[Problem]] = {name: [] for name in reference}
    for p in problems:
        name = where.get(p.split_key)
        if name is None:
            raise DataError(f"{p.task_id}: its split key {p.split_key!r} is in no split of the "
                            "reference dataset")
        out[name].append(p)
    return out
