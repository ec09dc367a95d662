r"""Student models: predict a function body's teacher embedding from its signature (SWE-JEPA Phase 1–3).

The record (``../shared/research/000_*.txt`` … ``003_*.txt``; ``DESIGN.md``, jepa *Students and
losses*) trains a student :math:`f_\theta` on frozen teacher states so that, for a function with
signature states :math:`S = (s_1, \dots, s_T)` and body embedding :math:`b`,

.. math::
    \hat b = f_\theta(S) \approx b
    \qquad (b \text{ centred with the training mean and L2-normalised by the data pipeline}).

Three students, found by name through :data:`STUDENTS` / :func:`build_student`:

* ``mlp`` — :class:`MLPStudent` (Exp 1.1): an MLP on the mean-pooled signature state.
* ``sig_predictor`` — :class:`SigPredictor` (Exp 1.2–1.4, 2.1; 3.0 with ``input_norm=True``,
  ``d_model=1024``): a small transformer encoder over the signature's token states, mean-pooled.
* ``sig_predictor_v2`` — :class:`SigPredictorV2` (Exp 2.2): the same encoder plus a training-only
  cross-attention decoder that predicts each body token's teacher state (I-JEPA style).

Each class says what it reads in ``input_kind``: ``"pooled"`` (``[B, D]``) or ``"tokens"``
(``[B, T, D]`` plus a ``[B, T]`` mask, True = real token); ``predicts_body_tokens`` says whether
``forward`` returns ``(pooled, body_tokens)`` instead of a tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["STUDENTS", "MLPStudent", "SigPredictor", "SigPredictorV2", "build_student",
           "student_names"]


def _reset_all(root: nn.Module) -> None:
    """Re-initialise every sub-module of ``root`` that knows how (Linear, LayerNorm, attention).

    ``nn.TransformerEncoder`` deep-copies its layer, so without this its layers start identical.
    """
    for module in root.modules():
        if module is root:
            continue
        if isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()


class MLPStudent(nn.Module):
    r"""MLP on the mean-pooled signature state (SWE-JEPA Exp 1.1, ``001_*.txt``).

    .. math::
        \hat b = W_4\, \phi(W_3\, \phi(W_2\, \phi(W_1 \bar s)))
        \qquad \bar s = \tfrac1T \textstyle\sum_t s_t,\quad
        \phi = \mathrm{Dropout} \circ \mathrm{GELU} \circ \mathrm{LayerNorm}

    Each hidden layer is Linear → LayerNorm → GELU → Dropout. The record gives only the widths
    (1024 → 512 → 1024) and the count, 5,252,608 parameters at D = 2048; the Linears alone make
    5,247,488, and the difference (5,120 = 2 × (1024 + 512 + 1024)) is one affine normalisation per
    hidden layer, hence the LayerNorm. The activation is not recorded (GELU here).

    Args:
        dim (int): teacher width ``D`` (input and output).
        hidden (Sequence[int]): hidden widths (default ``(1024, 512, 1024)``).
        dropout (float): dropout after each hidden activation (default 0.1).

    Shapes:
        - signature: ``[B, D]`` float, the mean over the signature's token states
        - output: ``[B, D]`` predicted body embedding
    """

    input_kind = "pooled"
    predicts_body_tokens = False

    def __init__(self, dim: int, hidden: Sequence[int] = (1024, 512, 1024),
                 dropout: float = 0.1) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if dim < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"dim and every hidden width must be >= 1 (and at least one hidden "
                             f"layer), got dim={dim}, hidden={hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dim, self.hidden, self.dropout = dim, hidden, dropout
        layers: list[nn.Module] = []
        width = dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (PyTorch defaults of Linear and LayerNorm)."""
        _reset_all(self)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, hidden={self.hidden}, dropout={self.dropout})"

    def forward(self, signature: Tensor) -> Tensor:
        """Predict ``[B, D]`` body embeddings from ``[B, D]`` mean-pooled signature states."""
        if signature.dim() != 2 or signature.size(-1) != self.dim:
            raise ValueError(f"signature must be [B, {self.dim}] (mean-pooled signature states), "
                             f"got {tuple(signature.shape)}")
        return self.net(signature)


def _check_tokens(tokens: Tensor, mask: Tensor, dim: int) -> None:
    """Raise ValueError unless ``tokens`` is ``[B, T, dim]`` and ``mask`` a bool ``[B, T]`` with a
    real token in every row."""
    if tokens.dim() != 3 or tokens.size(-1) != dim:
        raise ValueError(f"tokens must be [B, T, {dim}] signature token states, "
                         f"got {tuple(tokens.shape)}")
    if mask.dtype != torch.bool or mask.shape != tokens.shape[:2]:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(tokens.shape[:2])} (True = real "
                         f"token), got {mask.dtype} {tuple(mask.shape)}")
    empty = ~mask.any(dim=1)  # (B,)
    if empty.any():
        rows = torch.nonzero(empty).flatten()[:5].tolist()
        raise ValueError(f"{int(empty.sum())} rows of mask have no real token (first rows {rows}); "
                         "every signature needs at least one token")


class SigPredictor(nn.Module):
    r"""Transformer encoder over the signature's token states, mean-pooled (SWE-JEPA Exp 1.2–1.4).

    The record's SigPredictor (``000_*.txt``): Linear(D → d_model), ``layers``
    post-norm ``nn.TransformerEncoderLayer`` (PyTorch defaults: ReLU, post-norm; no final norm),
    a mean over the real (non-padding) tokens, Linear(d_model → D):

    .. math::
        H = \mathrm{Enc}(\mathrm{LN}?(S)\, W_{in}), \qquad
        \hat b = W_{out} \frac{\sum_t m_t H_t}{\sum_t m_t}

    At D = 2048 with the defaults this has 8,404,480 parameters, the record's figure exactly.
    ``input_norm=True`` (Exp 3.0, a larger teacher whose states have large, uneven norms) puts a
    LayerNorm(D) on the inputs. Padding never reaches a real token: it is masked out of attention
    (``src_key_padding_mask``) and out of the mean.

    Args:
        dim (int): teacher width ``D``.
        d_model (int): encoder width (default 512; 1024 for 3.0).
        layers (int): encoder layers (default 2).
        heads (int): attention heads; ``d_model`` must be divisible by it (default 8).
        ffn (int): feed-forward width (default 2048).
        dropout (float): dropout of attention and feed-forward (default 0.1).
        input_norm (bool): LayerNorm(D) on the input states (default False).

    Shapes:
        - tokens: ``[B, T, D]`` float signature token states
        - mask: ``[B, T]`` bool, True = real token (every row needs one)
        - output: ``[B, D]`` predicted body embedding
    """

    input_kind = "tokens"
    predicts_body_tokens = False

    def __init__(self, dim: int, d_model: int = 512, layers: int = 2, heads: int = 8,
                 ffn: int = 2048, dropout: float = 0.1, input_norm: bool = False) -> None:
        super().__init__()
        if min(dim, d_model, layers, heads, ffn) < 1:
            raise ValueError(f"dim, d_model, layers, heads and ffn must be >= 1, got dim={dim}, "
                             f"d_model={d_model}, layers={layers}, heads={heads}, ffn={ffn}")
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dim, self.d_model, self.layers, self.heads = dim, d_model, layers, heads
        self.ffn, self.dropout, self.input_norm = ffn, dropout, input_norm
        self.norm = nn.LayerNorm(dim) if input_norm else nn.Identity()
        self.input_proj = nn.Linear(dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ffn, dropout=dropout,
                                           batch_first=True)
        # no nested tensors: the same arithmetic with and without padding, and no prototype warning
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.output_proj = nn.Linear(d_model, dim)
        SigPredictor.reset_parameters(self)  # a subclass resets again once its own parts exist

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter (each encoder layer independently)."""
        _reset_all(self)

    def _hparams(self) -> str:
        return (f"{self.dim}, d_model={self.d_model}, layers={self.layers}, heads={self.heads}, "
                f"ffn={self.ffn}, dropout={self.dropout}, input_norm={self.input_norm}")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._hparams()})"

    def encode(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Encoder states ``[B, T, d_model]`` (padding positions hold meaningless values)."""
        _check_tokens(tokens, mask, self.dim)
        h = self.input_proj(self.norm(tokens))  # (B, T, d_model)
        return self.encoder(h, src_key_padding_mask=~mask)  # (B, T, d_model)

    def pool(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """Mean of ``hidden [B, T, d_model]`` over the real tokens of ``mask [B, T]``, projected to
        ``[B, D]``."""
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        mean = (hidden * m).sum(dim=1) / m.sum(dim=1)  # (B, d_model)
        return self.output_proj(mean)  # (B, D)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Predict ``[B, D]`` body embeddings from signature token states ``[B, T, D]``."""
        return self.pool(self.encode(tokens, mask), mask)


class SigPredictorV2(SigPredictor):
    r"""SigPredictor plus a training-only decoder of per-token body states (SWE-JEPA Exp 2.2).

    The encoder and pooled head are :class:`SigPredictor`'s (InfoNCE on the pooled output is the
    retrieval objective). During training a decoder predicts the teacher state of each of the
    first ``P`` body tokens (the auxiliary SmoothL1 target, weighted λ = 0.1 in the record):
    ``P`` learned queries (one per body position, at most ``max_body_tokens``) pass through
    ``decoder_blocks`` ``nn.TransformerDecoderLayer`` blocks — self-attention among the queries
    (no causal mask), cross-attention to the encoder states with the signature padding mask, FFN —
    and one Linear(d_model → D) shared by all positions:

    .. math::
        \hat B = \mathrm{Dec}(Q_{1:P},\, H)\, W_{body} \in \mathbb{R}^{P \times D}

    Evaluation calls ``forward`` without ``body_length`` and runs the encoder path alone. Under DDP
    pass ``body_length`` on every training step (else the decoder's parameters get no gradient).

    Args:
        dim, d_model, layers, heads, ffn, dropout, input_norm: as :class:`SigPredictor`.
        max_body_tokens (int): learned query positions (default 256, the teacher's
            ``max_body_tokens``).
        decoder_blocks (int): decoder blocks (default 2).

    Shapes:
        - tokens: ``[B, T, D]``; mask: ``[B, T]`` bool, True = real token
        - body_mask (optional): ``[B, P]`` bool, True = real body token; padded query positions
          are then kept out of the decoder's self-attention, so a real position's prediction does
          not depend on ``P`` or on other rows' body lengths
        - output: ``(pooled [B, D], body_tokens [B, P, D])``, or ``(pooled, None)`` without
          ``body_length``
    """

    predicts_body_tokens = True

    def __init__(self, dim: int, d_model: int = 512, layers: int = 2, heads: int = 8,
                 ffn: int = 2048, dropout: float = 0.1, input_norm: bool = False,
                 max_body_tokens: int = 256, decoder_blocks: int = 2) -> None:
        if max_body_tokens < 1 or decoder_blocks < 1:
            raise ValueError(f"max_body_tokens and decoder_blocks must be >= 1, got "
                             f"{max_body_tokens} and {decoder_blocks}")
        super().__init__(dim, d_model, layers, heads, ffn, dropout, input_norm)
        self.max_body_tokens, self.decoder_blocks = max_body_tokens, decoder_blocks
        self.queries = nn.Parameter(torch.empty(max_body_tokens, d_model))
        block = nn.TransformerDecoderLayer(d_model, heads, dim_feedforward=ffn, dropout=dropout,
                                           batch_first=True)
        self.decoder = nn.TransformerDecoder(block, decoder_blocks)
        self.body_proj = nn.Linear(d_model, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every learnable parameter; queries ~ N(0, 0.02²)."""
        _reset_all(self)
        nn.init.normal_(self.queries, std=0.02)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self._hparams()}, "
                f"max_body_tokens={self.max_body_tokens}, decoder_blocks={self.decoder_blocks})")

    def forward(self, tokens: Tensor, mask: Tensor, body_length: int | None = None,
                body_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Pooled ``[B, D]`` prediction and, given ``body_length = P``, body states ``[B, P, D]``.

        Raises:
            ValueError: bad shapes, ``body_length`` outside ``1 .. max_body_tokens``, or a
                ``body_mask`` without ``body_length`` or of the wrong shape.
        """
        hidden = self.encode(tokens, mask)  # (B, T, d_model)
        pooled = self.pool(hidden, mask)  # (B, D)
        if body_length is None:
            if body_mask is not None:
                raise ValueError("body_mask was given without body_length; pass both or neither")
            return pooled, None
        if not 1 <= body_length <= self.max_body_tokens:
            raise ValueError(f"body_length must lie in 1..{self.max_body_tokens} "
                             f"(max_body_tokens), got {body_length}")
        b = tokens.size(0)
        if body_mask is not None and (body_mask.dtype != torch.bool
                                      or body_mask.shape != (b, body_length)):
            raise ValueError(f"body_mask must be a bool tensor of shape ({b}, {body_length}), got "
                             f"{body_mask.dtype} {tuple(body_mask.shape)}")
        queries = self.queries[:body_length].unsqueeze(0).expand(b, -1, -1)  # (B, P, d_model)
        out = self.decoder(queries, hidden, memory_key_padding_mask=~mask,
                           tgt_key_padding_mask=None if body_mask is None else ~body_mask)
        return pooled, self.body_proj(out)  # (B, D), (B, P, D)


STUDENTS: dict[str, type[nn.Module]] = {
    "mlp": MLPStudent,
    "sig_predictor": SigPredictor,
    "sig_predictor_v2": SigPredictorV2,
}


def student_names() -> list[str]:
    """Registered student names, sorted."""
    return sorted(STUDENTS)


def build_student(name: str, dim: int, **options) -> nn.Module:
    """A new student ``name`` for teacher width ``dim``; ``options`` go to its constructor.

    Raises:
        ValueError: an unknown name (the message lists the registered ones) or an option the
            student does not take (the message lists those it does).
    """
    if name not in STUDENTS:
        raise ValueError(f"unknown student {name!r}; registered: {student_names()}")
    cls = STUDENTS[name]
    try:
        inspect.signature(cls).bind(dim, **options)
    except TypeError as e:
        accepted = [p for p in inspect.signature(cls).parameters if p != "dim"]
        raise ValueError(f"student {name!r}: {e}; it takes the options {accepted}") from e
    return cls(dim, **options)
