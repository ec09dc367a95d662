"""A frozen Hugging Face teacher read at one layer (``DESIGN.md``, jepa *Teacher*).

Layer convention: ``layer = i`` is ``hidden_states[i]`` of transformers — the output of the i-th
block, 0 being the embeddings — for the student's inputs and its targets alike. Blocks above ``i``
are removed before anything runs (:func:`truncate`); so is the final norm of a decoder unless
``i`` is its last layer (transformers applies that norm to ``hidden_states[-1]`` only), which keeps
the output equal to ``hidden_states[i]`` of the full model.

How a function is read (:meth:`Teacher.encode`):

* **causal** teachers read ``prefix + signature ids + body ids`` once, the two parts tokenised
  separately and concatenated so that the boundary is exact; ``prefix`` is what the tokenizer puts
  before any text, or else its BOS (else EOS) token. Signature positions give the inputs, body
  positions the targets; the prefix is neither. The first position of a causal LM is an attention
  sink of very large norm, which would dominate a mean; the prefix takes that position. Causal attention keeps the body out of the inputs.
* **bidirectional** teachers read ``[CLS] signature [SEP]`` for the inputs and ``[CLS] body [SEP]``
  separately for the targets (one sequence would let the body leak into the signature's states);
  the special tokens are included in the states and the means, as sentence-transformers pools.

Pooled states are means over those positions (computed in float32). Signatures keep their first
``max_signature_tokens`` tokens and bodies their first ``max_body_tokens`` (special tokens
included). Sequences are batched in order of length, so that batches carry little padding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.errors import EnvironmentProblem
from harness.precision import bf16_supported
from jepa.teacher.known import Kind, TeacherError, check_sha256, resolve_teacher

__all__ = ["States", "Teacher", "find_blocks", "teacher_kind", "truncate"]

logger = logging.getLogger(__name__)

_FINAL_NORMS = ("norm", "final_layernorm", "ln_f", "final_layer_norm")


def teacher_kind(config: Any) -> Kind:
    """``bidirectional`` for encoder models (masked-LM families: BERT, RoBERTa, ...), else ``causal``.

    Raises:
        TeacherError: the model type is neither a masked-LM nor a causal-LM family.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "bidirectional"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    raise TeacherError(f"cannot tell whether model type {model_type!r} is causal or bidirectional; "
                       f"set teacher.kind")


def find_blocks(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The model's stack of blocks: ``(owner, attribute, ModuleList)``, the ModuleList of
    ``config.num_hidden_layers`` modules (``encoder.layer`` in BERT, ``layers`` in Llama/Qwen).

    Raises:
        TeacherError: no or several such lists.
    """
    n = model.config.num_hidden_layers
    found = [(owner, attr, child)
             for owner in model.modules() for attr, child in owner.named_children()
             if isinstance(child, nn.ModuleList) and len(child) == n]
    if len(found) != 1:
        raise TeacherError(f"{type(model).__name__}: found {len(found)} module lists of "
                           f"{n} blocks; cannot truncate it")
    return found[0]


def truncate(model: nn.Module, layer: int) -> nn.Module:
    """Remove the blocks above ``layer`` so that ``model(...).last_hidden_state`` is
    ``hidden_states[layer]`` of the full model; returns ``model`` (changed in place).

    Also removes a decoder's final norm when ``layer`` is below the last layer and a BERT-style
    pooler. ``config.num_hidden_layers`` becomes ``layer``.

    Raises:
        TeacherError: ``layer`` outside ``0 .. num_hidden_layers``.
    """
    n = model.config.num_hidden_layers
    if not 0 <= layer <= n:
        raise TeacherError(f"teacher.layer must be in 0..{n} (hidden_states[0] = embeddings, "
                           f"[{n}] = last block; -1 = last), got {layer}")
    owner, attr, blocks = find_blocks(model)
    setattr(owner, attr, nn.ModuleList(list(blocks)[:layer]))
    model.config.num_hidden_layers = layer
    if layer < n:
        for name in _FINAL_NORMS:
            if isinstance(getattr(model, name, None), nn.Module):
                setattr(model, name, nn.Identity())
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after any text (``[CLS]``/``[SEP]``, a BOS, nothing)."""
    bare = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("x", add_special_tokens=True)["input_ids"])
    start = next(i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare)
    return full[:start], full[start + len(bare):]


@dataclass
class States:
    """Teacher states of N functions, in the order given to :meth:`Teacher.encode`.

    Shapes:
        signature: ``[N, D]`` float32, the mean over signature positions (student input).
        body: ``[N, D]`` float32, the mean over body positions (target).
        signature_length, body_length: ``[N]`` int64, positions read (after truncation).
        signature_tokens, body_tokens: ``N`` tensors ``[T_i, D]`` in the compute dtype, or
            ``None`` when per-token states were not asked for.
    """

    signature: torch.Tensor
    body: torch.Tensor
    signature_length: torch.Tensor
    body_length: torch.Tensor
    signature_tokens: list[torch.Tensor] | None = None
    body_tokens: list[torch.Tensor] | None = None


class Teacher:
    """A frozen Hugging Face model read at ``layer`` (see the module docstring).

    Build one with :meth:`load`. Parameters never require gradients and the model stays in
    ``eval()``.

    Args:
        model: the truncated base model (``AutoModel``).
        tokenizer: its tokenizer (a fast tokenizer).
        kind: ``causal`` or ``bidirectional``.
        layer: the layer read.
        name: the model's name or path, for reports.
        weights_sha256: the SHA-256 of its weight file, or its hub revision, or ``""``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, kind: Kind, layer: int, name: str,
                 weights_sha256: str = "") -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        tokenizer.model_max_length = 1 << 30  # parts are cut to their limits here, not there
        self.kind = kind
        self.layer = layer
        self.name = name
        self.weights_sha256 = weights_sha256
        self.dim = int(model.config.hidden_size)
        self._prefix, self._suffix = _special_tokens(tokenizer)
        if kind == "causal" and not self._prefix:  # give the attention sink a position of its own
            start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            self._prefix = [start] if start is not None else []
        pad = tokenizer.pad_token_id
        self._pad = pad if pad is not None else (tokenizer.eos_token_id or 0)

    def __repr__(self) -> str:
        p = next(self.model.parameters())
        return (f"{type(self).__name__}({self.name!r}, kind={self.kind}, layer={self.layer}, "
                f"dim={self.dim}, dtype={str(p.dtype).removeprefix('torch.')}, device={p.device})")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def load(cls, model: str, *, layer: int | None = None, kind: str = "auto", dtype: str = "auto",
             device: str | torch.device = "cpu", gguf_file: str = "", sha256: str = "",
             revision: str | None = None) -> Teacher:
        """Load, check, freeze and truncate a teacher.

        Args:
            model: a known name (:data:`jepa.teacher.known.KNOWN_TEACHERS`), a local directory
                or a Hugging Face hub id (from the local cache; nothing is downloaded).
            layer: the layer read; ``None`` takes a known teacher's default; negative counts from
                the end (``-1``: the last layer, the whole stack).
            kind: ``auto`` (from the model type), ``causal`` or ``bidirectional``.
            dtype: ``auto`` (bf16 where :func:`bf16_supported`, else float32), ``bfloat16``,
                ``float16`` or ``float32``.
            device: where it runs.
            gguf_file: a GGUF weight file inside a local directory (needs the ``gguf`` package;
                dequantised to float by transformers).
            sha256: the expected hash of the weight file (known packaged teachers have theirs).
            revision: a hub revision.

        Raises:
            TeacherError: an unknown model, a weight file of another hash, a bad layer.
            EnvironmentProblem: a missing package (named with its install command) or weights
                that are not on this machine.
        """
        from transformers import AutoModel, AutoTokenizer

        resolved = resolve_teacher(model, gguf_file=gguf_file, sha256=sha256)
        weights_hash = ""
        if resolved.weights is not None and resolved.sha256:
            weights_hash = check_sha256(resolved.weights, resolved.sha256)
        if layer is None:
            if resolved.known is None:
                raise TeacherError(f"teacher.layer is required for {model!r} (not a known teacher)")
            layer = resolved.known.layer
        device = torch.device(device)
        torch_dtype = {"auto": torch.bfloat16 if bf16_supported(device) else torch.float32,
                       "bfloat16": torch.bfloat16, "float16": torch.float16,
                       "float32": torch.float32}.get(dtype)
        if torch_dtype is None:
            raise TeacherError(f"teacher.dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
        kwargs: dict[str, Any] = {"revision": revision}
        if resolved.gguf_file:
            kwargs["gguf_file"] = resolved.gguf_file
        local_only = resolved.known is not None or resolved.weights is not None
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.source, local_files_only=local_only, **kwargs)
            net = AutoModel.from_pretrained(resolved.source, local_files_only=local_only,
                                            dtype=torch.float32, **kwargs)
        except ImportError as exc:
            raise EnvironmentProblem(f"teacher {model!r}: {exc}") from exc
        except OSError as exc:
            how = resolved.known.install if resolved.known else "give a local directory or a hub id in the cache"
            raise EnvironmentProblem(f"teacher {model!r}: its weights are not on this machine "
                                     f"({str(exc).splitlines()[0]}); {how}") from exc
        if not weights_hash:
            weights_hash = getattr(net.config, "_commit_hash", None) or ""
        if layer < 0:  # counted from the end, as hidden_states[-1]
            layer += net.config.num_hidden_layers + 1
        chosen = teacher_kind(net.config) if kind == "auto" else kind
        if chosen not in ("causal", "bidirectional"):
            raise TeacherError(f"teacher.kind must be auto, causal or bidirectional, got {kind!r}")
        truncate(net, layer)
        net.to(device=device, dtype=torch_dtype)
        teacher = cls(net, tokenizer, kind=chosen, layer=layer, name=model,
                      weights_sha256=weights_hash)
        logger.info("teacher %r", teacher)
        return teacher

    @torch.no_grad()
    def encode_layers(self, signatures: Sequence[str], bodies: Sequence[str], *, batch_size: int = 32,
                      max_signature_tokens: int = 128, max_body_tokens: int = 256
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean-pooled signature and body states at every layer up to the one read, as
        :meth:`encode` pools them (for layer selection, Phase 0.1).

        Returns:
            ``(signature, body)``, each ``[L + 1, N, D]`` float32 (``[i]`` = ``hidden_states[i]``).
        """
        if len(signatures) != len(bodies):
            raise ValueError(f"{len(signatures)} signatures but {len(bodies)} bodies")
        seqs = self.sequences(signatures, bodies, max_signature_tokens=max_signature_tokens,
                              max_body_tokens=max_body_tokens)
        pooled = torch.zeros((self.layer + 1, len(seqs), self.dim), dtype=torch.float32)
        for chunk, hidden in self._passes(seqs, batch_size, all_layers=True):  # [L+1, B, T, D]
            for row, j in chunk:
                _, start, end = seqs[j]
                pooled[:, j] = hidden[:, row, start:end].float().mean(1)
        return pooled[:, 0::2].clone(), pooled[:, 1::2].clone()

    # ------------------------------------------------------------------ reading functions
    def tokenize(self, texts: Sequence[str], limit: int) -> list[list[int]]:
        """Token ids of each text without special tokens, the first ``limit`` kept.

        Bidirectional teachers keep fewer so that ``[CLS] ... [SEP]`` fits ``limit``.
        """
        keep = limit - (len(self._prefix) + len(self._suffix) if self.kind == "bidirectional" else 0)
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [list(x[:keep]) for x in ids]

    def sequences(self, signatures: Sequence[str], bodies: Sequence[str], *,
                  max_signature_tokens: int, max_body_tokens: int) -> list[tuple[list[int], int, int]]:
        """The sequences the teacher reads, as ``(ids, start, end)``: the states of ``ids[start:end]``
        are kept. Causal: one sequence per function, ``2 N`` entries alternating signature
        (``prefix + sig + body`` with the signature span) and body (the same ids, the body span);
        bidirectional: the signature sequence then the body sequence of each function.
        """
        sig = self.tokenize(signatures, max_signature_tokens)
        body = self.tokenize(bodies, max_body_tokens)
        out = []
        for s, b in zip(sig, body):
            if self.kind == "causal":
                ids = self._prefix + s + b
                p = len(self._prefix)
                out += [(ids, p, p + len(s)), (ids, p + len(s), len(ids))]
            else:
                for part in (s, b):
                    ids = self._prefix + part + self._suffix
                    out.append((ids, 0, len(ids)))
        return out

    @torch.no_grad()
    def forward_ids(self, batch: Sequence[Sequence[int]], *, all_layers: bool = False) -> torch.Tensor:
        """States ``[B, T_max, D]`` of right-padded sequences (compute dtype); with
        ``all_layers``, ``[L + 1, B, T_max, D]``: ``hidden_states[0..L]`` up to the layer read."""
        width = max(len(x) for x in batch)
        ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, x in enumerate(batch):
            ids[i, :len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, :len(x)] = 1
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         output_hidden_states=all_layers)
        return torch.stack(out.hidden_states) if all_layers else out.last_hidden_state

    def _passes(self, seqs: list[tuple[list[int], int, int]], batch_size: int, all_layers: bool = False):
        """Yield ``(chunk, hidden)`` per forward pass over ``seqs`` sorted by length: ``chunk``
        lists ``(row, j)`` pairs (row of ``hidden`` -> entry ``j`` of ``seqs``), ``hidden`` is
        :meth:`forward_ids`' output. A causal function's two entries share one pass."""
        runs = list(range(0, len(seqs), 2)) if self.kind == "causal" else list(range(len(seqs)))
        runs.sort(key=lambda i: (len(seqs[i][0]), i))
        for b0 in range(0, len(runs), batch_size):
            batch = runs[b0:b0 + batch_size]
            hidden = self.forward_ids([seqs[i][0] for i in batch], all_layers=all_layers)
            yield [(row, j) for row, i in enumerate(batch)
                   for j in ((i, i + 1) if self.kind == "causal" else (i,))], hidden

    @torch.no_grad()
    def encode(self, signatures: Sequence[str], bodies: Sequence[str], *, batch_size: int = 32,
               max_signature_tokens: int = 128, max_body_tokens: int = 256, tokens: bool = False,
               progress: Callable[[int], None] | None = None) -> States:
        """Signature and body states of N functions (see the module docstring).

        Args:
            signatures, bodies: the N functions' parts (``Function.signature`` / ``.body``).
            batch_size: sequences per forward pass; sequences are sorted by length first.
            max_signature_tokens, max_body_tokens: tokens kept per part.
            tokens: also return the per-token states.
            progress: called with the number of functions finished after each batch.

        Returns:
            :class:`States` in the input order.

        Raises:
            ValueError: ``signatures`` and ``bodies`` differ in length.
        """
        if len(signatures) != len(bodies):
            raise ValueError(f"{len(signatures)} signatures but {len(bodies)} bodies")
        n = len(signatures)
        seqs = self.sequences(signatures, bodies, max_signature_tokens=max_signature_tokens,
                              max_body_tokens=max_body_tokens)
        pooled = torch.zeros((2 * n, self.dim), dtype=torch.float32)
        lengths = torch.zeros(2 * n, dtype=torch.long)
        token_states: list[torch.Tensor | None] = [None] * (2 * n)
        done = 0  # entries finished; a function is two entries
        for chunk, hidden in self._passes(seqs, batch_size):  # hidden: [B, T, D]
            for row, j in chunk:
                _, start, end = seqs[j]
                h = hidden[row, start:end]  # [T_j, D]
                pooled[j] = h.float().mean(0) if end > start else 0.0
                lengths[j] = end - start
                if tokens:
                    token_states[j] = h.to("cpu", copy=True)
            if progress is not None:
                progress((done + len(chunk)) // 2 - done // 2)
            done += len(chunk)
        return States(signature=pooled[0::2].clone(), body=pooled[1::2].clone(),
                      signature_length=lengths[0::2].clone(), body_length=lengths[1::2].clone(),
                      signature_tokens=token_states[0::2] if tokens else None,
                      body_tokens=token_states[1::2] if tokens else None)
