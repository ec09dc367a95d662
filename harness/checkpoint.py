"""Checkpoint files: atomic writes with a SHA-256 beside them, verified loads, weights that fit.

A checkpoint is one ``torch.save`` dict (written by :class:`harness.trainer.Trainer`) holding at
least ``format``, ``model`` (a state dict), ``config`` (the resolved experiment configuration as
plain dicts) and ``extra`` (what the track needs besides the weights, e.g. a vocabulary).

Integrity: :func:`save_checkpoint` writes ``<name>.sha256`` beside ``<name>`` (``sha256sum``
format, so ``sha256sum -c best.pt.sha256`` checks it by hand), and :func:`load_checkpoint`
verifies it before unpickling: a file with flipped bytes is a :class:`CheckpointError` naming the
file, never a model that silently evaluates to 0 %. A checkpoint without the ``.sha256`` file
(copied alone, or written by older code) loads with a warning. The two files are written one after
the other, each atomically: a crash between the two writes leaves a new checkpoint beside the old
digest, which is reported as a mismatch rather than trusted.

:func:`load_model` is the one way from a checkpoint file to (configuration, extras, model with
its weights): tracks pass their configuration class and a ``build(config, extra)`` function.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.config import ConfigError, from_dict
from harness.io import atomic_write, atomic_write_text

if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written, not with the errors
    import torch

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "LoadedModel", "digest_path",
           "load_checkpoint", "load_model", "load_weights", "save_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
C = TypeVar("C")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: unreadable, truncated, altered (SHA-256 mismatch),
    not written by :class:`harness.trainer.Trainer`, or holding weights of another model."""


def digest_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically to ``path``, then its SHA-256 to ``<path>.sha256``.

    Returns:
        ``path``.

    Raises:
        OSError: the directory is not writable (the previous files are left untouched).
    """
    import torch

    path = Path(path)
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    data = buf.getbuffer()
    atomic_write(path, lambda f: f.write(data))
    atomic_write_text(digest_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    return path


def _verify(path: Path, data: bytes) -> None:
    """Check ``data`` (the bytes of ``path``) against ``<path>.sha256`` when that file exists."""
    sidecar = digest_path(path)
    if not sidecar.is_file():
        log.warning("%s has no %s beside it: loading it unverified", path, sidecar.name)
        return
    try:
        expected = sidecar.read_text(encoding="ascii").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise CheckpointError(f"{sidecar} (the SHA-256 of {path}) is unreadable ({exc}); "
                              f"delete it to load {path} unverified") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its SHA-256 is {actual[:16]}..., but {sidecar.name} "
            f"recorded {expected[:16]}... when it was written (bytes changed since: a bad copy or "
            "disk); use another checkpoint of the run (best.pt / last.pt; to resume from best.pt, "
            "copy it and its .sha256 over last.pt) or train again")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, after checking its SHA-256.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the SHA-256 does not match, or the file is not a readable checkpoint of
            this format (truncated, corrupt, written by something else); the message names the
            file and says what to do.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    data = path.read_bytes()  # read once: verified, then unpickled from memory
    _verify(path, data)
    try:
        ckpt = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt zips/pickles
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "truncated (the trainer writes checkpoints atomically, so it was damaged afterwards: "
            "an incomplete copy, a full disk) — use another checkpoint of the run (best.pt / "
            "last.pt; to resume from best.pt, copy it over last.pt) or train again"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else None
        raise CheckpointError(f"{path} is not a trainer checkpoint of format {CHECKPOINT_FORMAT} "
                              f"(found {type(ckpt).__name__} with format {found})")
    return ckpt


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load the state dict ``state`` into ``model``, or say plainly why it does not fit.

    Args:
        model: the model built from the checkpoint's own configuration.
        state: the checkpoint's ``"model"`` state dict.
        source: where the weights come from (shown in the error), e.g. the checkpoint path.

    Raises:
        CheckpointError: the weights belong to another model, another size or another version of
            the code; the message names the first differing tensors and what to do.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"the weights in {source} do not fit {type(model).__name__}: {'; '.join(parts)}. The "
            "checkpoint was written for another model or configuration, or by another version of "
            "this code (its run.json names the git commit): use that commit, or retrain")
    model.load_state_dict(state)


@dataclass
class LoadedModel:
    """What :func:`load_model` returns.

    Attributes:
        path: the checkpoint file.
        config: the typed configuration the model was trained with.
        extra: the checkpoint's ``extra`` (the track's own state besides the weights).
        model: the model, weights loaded, in ``eval()`` mode, on the requested device.
        checkpoint: the whole checkpoint dict (epoch, step, metrics, ...).
    """

    path: Path
    config: Any
    extra: dict[str, Any]
    model: torch.nn.Module
    checkpoint: dict[str, Any]


def load_model(path: str | os.PathLike, config_cls: type[C],
               build: Callable[[C, dict[str, Any]], torch.nn.Module],
               device: str | torch.device = "cpu") -> LoadedModel:
    """Load checkpoint ``path``: its configuration (as ``config_cls``), extras and model with weights.

    Args:
        path: a checkpoint written by the trainer.
        config_cls: the track's experiment configuration dataclass.
        build: ``build(config, extra) -> model`` (the track's model registry).
        device: where the model goes.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: damaged file, a configuration this code no longer understands, or weights
            that do not fit the model the configuration describes.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    try:
        cfg = from_dict(config_cls, ckpt.get("config") or {})
    except ConfigError as exc:
        raise CheckpointError(f"the configuration stored in {path} is not valid for this version "
                              f"of the code ({exc}); use the commit its run.json names") from exc
    extra = ckpt.get("extra") or {}
    model = build(cfg, extra)
    load_weights(model, ckpt["model"], str(path))
    return LoadedModel(path, cfg, extra, model.to(device).eval(), ckpt)
