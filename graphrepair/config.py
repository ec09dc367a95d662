"""Typed configuration of a graphrepair experiment (one YAML file per experiment in ``configs/graphrepair``).

Every section is a dataclass; :func:`harness.config.load_experiment` fills them from
``configs/graphrepair/<exp>.yaml`` and ``--set section.key=value`` overrides, and rejects unknown keys
and wrong types. Defaults follow the Phase 1.5 record (``../shared/research/004_*.txt``), Experiment 3d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from graphrepair.graphs.schema import LeafCategory
from harness.config import ConfigError, check_range, load_experiment

LEAF_CATEGORIES = tuple(c.value for c in LeafCategory)
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "graphrepair"


@dataclass
class DataConfig:
    """Which programs, how they are split, and how many corrupted samples are drawn.

    Attributes:
        dataset: ``mbpp`` | ``sanitized-mbpp`` | ``humaneval`` (see :mod:`graphrepair.data.problems`)
            | ``mbpp_plus`` | ``humaneval_plus`` | ``humaneval_plus_mini`` (EvalPlus: a test per
            generated input, per-problem time limits; :mod:`graphrepair.data.evalplus`). MBPP+
            problems fall in the split of their MBPP originals (``split_fractions``/``split_seed``
            apply to MBPP's 974 problems), so MBPP and MBPP+ runs share test problems.
        data_dir: directory holding the dataset files; ``None`` = env ``GRAPHREPAIR_DATA`` or the
            per-user cache.
        split_fractions: train/val/test fractions of *problems* (the split is by problem).
        split_seed: seed of the deterministic problem split.
        train_samples: corrupted training samples per epoch, a fresh corruption each epoch; drawn
            without replacement while there are enough distinct training problems, otherwise every
            problem is used equally often and the duplication rate is logged and saved (the record's
            Exp 3d used 1000 samples that were 47.5% duplicates).
        val_samples: corrupted validation samples (fixed corruptions; Exp 3d: 200).
        max_nodes: programs whose graph has more nodes are left out (record: 1000).
        max_tests: at most this many tests per program are run and fed back (record: 100).
        vocab_min_freq: leaf texts seen fewer times in the training split map to UNK (then
            training sees real UNK inputs, whose targets are ignored by the loss, and the UNK
            embedding is trained; see also ``train.unk_replacement``).
        dedup: remove from val/test the programs that near-duplicate a program of an earlier
            split (train, then val): equal normalised ASTs, or normalised token sequences at least
            ``near_duplicate_similarity`` similar (:mod:`graphrepair.data.dedup`). Changing either
            changes the val/test programs, and so every evaluation's inputs.
        near_duplicate_similarity: the token-similarity threshold in (0, 1]
            (:func:`graphrepair.data.dedup.token_similarity` of the normalised leaf-token
            sequences); ``null``: the normalised-AST criterion only.
    """

    dataset: Literal["mbpp", "sanitized-mbpp", "humaneval", "mbpp_plus", "humaneval_plus",
                     "humaneval_plus_mini"] = "mbpp"
    data_dir: str | None = None
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 0
    train_samples: int = 1000
    val_samples: int = 200
    max_nodes: int = 1000
    max_tests: int = 100
    vocab_min_freq: int = 1
    dedup: bool = True
    near_duplicate_similarity: float | None = 0.9

    def __post_init__(self) -> None:
        if self.near_duplicate_similarity is not None:
            check_range("near_duplicate_similarity", self.near_duplicate_similarity, low=0, high=1,
                        low_open=True)
        for name in ("train_samples", "val_samples", "max_nodes", "max_tests", "vocab_min_freq"):
            check_range(name, getattr(self, name), low=1)
        if len(self.split_fractions) != 3 or any(f < 0 for f in self.split_fractions) \
                or abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ConfigError(f"split_fractions must be three fractions >= 0 summing to 1 "
                              f"(train, val, test), got {self.split_fractions}")


@dataclass
class CorruptionConfig:
    """Leaf-token corruption (DESIGN.md "Corruption").

    Attributes:
        rates: corruption rates used in training (curriculum goes from the first to the last).
        eligible: leaf categories that may be masked (:class:`~graphrepair.graphs.schema.LeafCategory`
            values: identifier, keyword, operator, punctuation, literal, comment, other).
        curriculum: schedule over ``rates`` (:mod:`graphrepair.loop.curriculum`): ``fixed`` (only
            ``rates[0]``), ``increasing`` (easy to hard, then mixed; the record's) or ``mixed``.
        curriculum_fraction: fraction of the epochs over which ``increasing`` unlocks harder
            rates one by one; after it, rates are drawn uniformly.
    """

    rates: list[float] = field(default_factory=lambda: [0.2, 0.5, 0.75])
    eligible: list[str] = field(
        default_factory=lambda: ["identifier", "operator", "keyword", "literal"]
    )
    curriculum: Literal["fixed", "increasing", "mixed"] = "increasing"
    curriculum_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.rates:
            raise ConfigError("rates must list at least one corruption rate")
        for rate in self.rates:
            check_range("rates", rate, low=0, high=1, low_open=True)
        unknown = sorted(set(self.eligible) - set(LEAF_CATEGORIES))
        if unknown or not self.eligible:
            raise ConfigError(f"eligible must name leaf categories among {list(LEAF_CATEGORIES)}, "
                              f"got {self.eligible}")
        check_range("curriculum_fraction", self.curriculum_fraction, low=0, high=1)


@dataclass
class ModelConfig:
    """Refiner architecture.

    Attributes:
        name: a model of the registry (:mod:`graphrepair.models.registry`): ``guided_unet``
            (5 features + cross-attention to per-test feedback; Exp 3, 3b, 3c, 3d),
            ``iterative_unet`` (6 features with a per-node test signal; Exp 1, 2, 4) or
            ``pointer_unet`` (``guided_unet`` + editable feature + pointer; Exp 5).
        hidden: hidden width (record: 256).
        depth: number of pooling levels of the Graph U-Net (record: 3).
        gat_heads: attention heads of each GAT layer (their outputs are concatenated to ``hidden``).
        attention_heads: heads of the node -> test cross-attention (record: 4).
        pool_ratio: fraction of nodes kept by each top-k pooling.
        dropout: dropout probability.
        use_test_guidance: ``False`` removes the feedback path entirely (Exp 3b).
        failure_details: ``guided_unet`` also embeds what each failing test said: its exception
            type, the nodes on the program line it was raised at, a failed comparison's value
            types (:mod:`graphrepair.feedback.failures`). Default ``False``, so that the record's
            experiment configs and their checkpoints (whose saved configs lack the key) build the
            model they were trained with; the ``*_failures`` configs turn it on. Ignored by
            ``iterative_unet`` (see ``feedback.raise_signal``).
        copy: ``pointer_unet`` (:mod:`graphrepair.models.pointer_unet`): the pointer over the
            names of the program and its tests beside the vocabulary softmax (``False``: the
            "copy off" ablation). Read by ``pointer_unet`` only.
        editable_feature: ``pointer_unet``: embed which leaves the repair may change (fixed along
            a trajectory). Read by ``pointer_unet`` only.
    """

    name: str = "guided_unet"
    hidden: int = 256
    depth: int = 3
    gat_heads: int = 4
    attention_heads: int = 4
    pool_ratio: float = 0.5
    dropout: float = 0.1
    use_test_guidance: bool = True
    failure_details: bool = False
    copy: bool = True
    editable_feature: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "gat_heads", "attention_heads"):
            check_range(name, getattr(self, name), low=1)
        check_range("pool_ratio", self.pool_ratio, low=0, high=1, low_open=True)
        check_range("dropout", self.dropout, low=0, high=1, high_open=True)


@dataclass
class FeedbackConfig:
    """How test results reach the model.

    Attributes:
        feedback_at_iteration0: ``False`` is the Exp 3c rule: no test feedback at iteration 0.
        min_confidence: at iterations >= 1 a leaf is changed only when the model's probability of its
            new token is at least this (iteration 0 always fills every MASK with the argmax). A
            leaf the model reads as UNK is never changed, and UNK is never written
            (:mod:`graphrepair.loop.refine`).
        signal: the per-node test signal of the 6-feature model (``iterative_unet``): ``binary``
            (covered by a failing test; Exp 1, 2), ``tarantula`` (Exp 4), ``ochiai`` or ``dstar``
            (:mod:`graphrepair.feedback.spectrum`). The loss weight ``1 + train.test_weight * signal``
            uses the same signal.
        load_lines: which tests cover the lines executed only while the program loads (``def``
            headers, imports, module-level code), in the spectrum of the 6-feature signal and in
            the per-test traces of ``guided_unet``: ``every_test`` (default: the rule the
            record's experiment configs and their checkpoints were trained with) or ``no_test``
            (those lines score 0 and belong to no trace; the better localization, and the
            default of :func:`graphrepair.feedback.spectrum.line_spectrum`; the ``*_failures``
            configs use it).
        raise_signal: weight ``w`` in [0, 1] of the raising line in the 6-feature signal:
            ``signal_v = (1 - w) · score_v + w · r_v``, with ``r_v`` the fraction of the failing
            tests whose exception was raised on node v's line
            (:func:`graphrepair.loop.refine.signal_from_result`). Default 0 (the signal of the
            record's experiments).
        max_records: the per-test records the 5-feature models read per program: the failing
            tests first, then passing ones, each in test order, up to this many
            (:meth:`graphrepair.features.encoding.Feedback.select`); every test still runs and
            counts for pass_rate and the verifier. 0 (default): one record per test run
            (``data.max_tests``). The model's cost grows with the records (their coverage pairs).
    """

    feedback_at_iteration0: bool = False
    min_confidence: float = 0.5
    signal: Literal["binary", "tarantula", "ochiai", "dstar"] = "binary"
    load_lines: Literal["every_test", "no_test"] = "every_test"
    raise_signal: float = 0.0
    max_records: int = 0

    def __post_init__(self) -> None:
        check_range("max_records", self.max_records, low=0)
        check_range("min_confidence", self.min_confidence, low=0, high=1)
        check_range("raise_signal", self.raise_signal, low=0, high=1)


@dataclass
class DecodingConfig:
    """How the refiner's predictions become leaf texts (Issue 21; beyond the record).

    The defaults are the record's rule, so the existing experiment configs and their checkpoints
    (whose saved configs lack the section) decode as before.

    Attributes:
        grammar: restrict each leaf to texts of its lexical category, known from the AST
            (:mod:`graphrepair.loop.constraints`), at training and evaluation.
        identifiers: ``vocabulary`` (any identifier of the vocabulary) or ``in_scope`` (only names
            in the current program, its tests and setup, the builtins, and the exports of standard
            modules it names; :func:`graphrepair.loop.constraints.scope_names`).
        policy: iterations >= 1 either ``edit`` (the record's rule: change a leaf whose argmax
            differs with probability >= ``feedback.min_confidence``) or ``mask_predict``
            (Ghazvininejad et al., EMNLP 2019: re-mask the ``n_k`` least trusted corrupted leaves
            and predict them again; :meth:`graphrepair.loop.refine.Refiner.remask`) or ``verify``
            (execute ``candidates`` of the model's proposals per program, keep the one passing the
            most tests).
        remask: which corrupted leaves ``mask_predict`` re-masks first: ``confidence`` (lowest
            probability when written), ``spectrum`` (most suspicious under Tarantula in the
            current program's test results) or ``both`` (highest ``(1 - p) + suspiciousness``).
        forbid_previous: a re-masked leaf may not take the text it had (only when the program
            failed its tests, and only where its category offers another text).
        candidates: ``verify`` (the tests as a verifier,
            :meth:`graphrepair.loop.refine.Refiner.verify_step`): programs executed per program
            at each iteration >= 1, so at most ``1 + (eval.iterations - 1) · candidates`` per
            program; the search baseline gets the same executions.
        top_k: ``verify``: the model's most probable texts per corrupted leaf it tries.
        copy_slots: ``pointer_unet`` with ``model.copy``: output columns for the out-of-vocabulary
            names of each program and its tests, so that the pointer can write them (the extended
            vocabulary of pointer-generator networks; 0: in-vocabulary names only). Adds no
            parameters, so a trained model can be decoded either way.
    """

    grammar: bool = False
    identifiers: Literal["vocabulary", "in_scope"] = "vocabulary"
    policy: Literal["edit", "mask_predict", "verify"] = "edit"
    remask: Literal["confidence", "spectrum", "both"] = "both"
    forbid_previous: bool = False
    candidates: int = 8
    top_k: int = 5
    copy_slots: int = 32

    def __post_init__(self) -> None:
        check_range("copy_slots", self.copy_slots, low=0)
        check_range("candidates", self.candidates, low=1)
        check_range("top_k", self.top_k, low=1)


@dataclass
class TrainConfig:
    """Optimisation and trajectory replay.

    Attributes:
        epochs: training epochs (record: 50).
        batch_size: trajectories per optimisation step.
        lr: AdamW learning rate (record: 1e-3).
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm (0 disables clipping).
        trajectory_iterations: refinement iterations replayed per trajectory (iteration 0 included).
        scheduled_sampling_warmup: probability of following the model's own prediction at the first epoch.
        scheduled_sampling_max: that probability at the last epoch (linear in between).
        test_weight: loss weight 1 + test_weight x signal (0 for cross-attention experiments).
        pipeline: replay a batch as two interleaved halves, so that one half's programs are
            executed while the model computes the other's (same loss; see
            :meth:`graphrepair.loop.training.RefinementTask.training_step`).
        patience: stop after this many epochs without a better validation metric (0 = never).
        init_checkpoint: start from the weights and vocabulary of this checkpoint (fine-tuning,
            Exp 2): a path, or ``latest:<exp>`` = the newest ``<run_root>/<exp>-*/best.pt``;
            ``""`` = random initialisation.
        floor_metric: a validation metric (e.g. ``repair_accuracy@20``, the one-shot accuracy at
            20% corruption) that must not fall more than ``floor_margin`` below its value for the
            starting weights; the run stops as soon as it does (Exp 2's guard). ``""`` = none.
        floor_margin: that margin, as a fraction (0.03 = 3 percentage points).
        seed: global seed (split, corruption, init, sampling).
        device: ``auto`` (cuda when available), ``cpu`` or ``cuda`` (under torchrun: the GPU of
            ``LOCAL_RANK``).
        bf16: bf16 autocast of the training step on CUDA (ignored on CPU).
        static_graph: under torchrun, wrap the model in ``DistributedDataParallel(static_graph=
            True)`` (see :class:`harness.trainer.TrainerConfig`). Trajectory replay calls the
            model once per iteration before one backward, which plain DDP cannot reduce, so every
            experiment config turns it on; ignored in a single process.
        grad_accum_steps: micro-batches of ``batch_size`` trajectories per optimisation step.
        schedule: learning rate over steps: ``constant`` (the record's) or ``cosine`` (linear
            warm-up over ``warmup_steps``, then cosine decay to ``min_lr``; see
            :class:`harness.trainer.TrainerConfig`).
        warmup_steps: optimisation steps of linear warm-up (both schedules).
        min_lr: the floor of the cosine decay.
        unk_replacement: probability that an uncorrupted leaf of a training trajectory is read by
            the model as ``UNK`` (word dropout; :func:`graphrepair.data.corruption.unk_replacement`),
            so that the ``UNK`` embedding is trained: with ``data.vocab_min_freq`` 1 no training
            leaf is out of vocabulary, while at evaluation every out-of-vocabulary leaf reaches
            the model as ``UNK``. The leaf keeps its text and its loss target (its real token);
            validation and evaluation never replace. Default 0.0 (off), so that the existing
            experiment configs and checkpoints, whose saved configs lack the key, train and resume
            as before; 0.02 is a reasonable value for new experiments. An alternative (or
            complement) is ``data.vocab_min_freq`` >= 2, which makes rare training texts real UNKs.
        loss_leaves: ``all`` leaves (the record's) or only the ``corrupted`` ones, the leaves the
            repair may edit (with ``decoding.policy: mask_predict``).
        select_on: the validation metric that picks ``best.pt``: ``one_shot`` repair_accuracy
            (the record's; no test runs) or the ``final`` repair_accuracy after
            ``eval.iterations`` iterations of refinement with real tests on the validation
            programs (the metric the evaluation reports; slower validation).
    """

    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    trajectory_iterations: int = 3
    scheduled_sampling_warmup: float = 0.5
    scheduled_sampling_max: float = 0.95
    test_weight: float = 0.0
    pipeline: bool = True
    patience: int = 0
    init_checkpoint: str = ""
    floor_metric: str = ""
    floor_margin: float = 0.0
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    static_graph: bool = False
    grad_accum_steps: int = 1
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0
    unk_replacement: float = 0.0
    loss_leaves: Literal["all", "corrupted"] = "all"
    select_on: Literal["one_shot", "final"] = "one_shot"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "trajectory_iterations", "grad_accum_steps"):
            check_range(name, getattr(self, name), low=1)
        check_range("lr", self.lr, low=0, low_open=True)
        check_range("min_lr", self.min_lr, low=0, high=self.lr)
        check_range("warmup_steps", self.warmup_steps, low=0)
        for name in ("weight_decay", "grad_clip", "test_weight", "patience"):
            check_range(name, getattr(self, name), low=0)
        check_range("scheduled_sampling_warmup", self.scheduled_sampling_warmup, low=0, high=1)
        check_range("scheduled_sampling_max", self.scheduled_sampling_max, low=0, high=1)
        check_range("unk_replacement", self.unk_replacement, low=0, high=1, high_open=True)
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class SandboxConfig:
    """Test execution limits (see :mod:`harness.sandbox`).

    Attributes:
        timeout_s: wall-clock limit per test, in seconds. Default 1 s: every MBPP reference
            program but task 123 (~2 s of arithmetic; a timeout under any limit with the tracer on)
            runs each test in well under 0.1 s in the sandbox, while a model-written program
            that loops holds a sandbox worker for this long per test (with 3 s, such programs
            made Exp 3d epochs take 50-106 s instead of ~50 s on the 2-core machine).
        memory_mb: address-space limit per program, in MiB.
        budget_s: time budget of one program's tests, in seconds (0 = none): once it is spent,
            the tests left after a timeout are not run (they count as ``timeout``;
            :func:`harness.sandbox.run_tests`). MBPP's 3 tests never reach it; with EvalPlus's
            ~100 tests per program it keeps a program that loops on every test from holding a
            worker for ~100 × ``timeout_s``.
        workers: programs executed concurrently (0 = one per CPU core, divided among the
            torchrun processes of the machine).
        cache: SQLite file of a :class:`harness.cache.ResultCache` shared across runs and
            processes; ``""`` keeps results in memory for this run only.
    """

    timeout_s: float = 1.0
    memory_mb: int = 2048
    budget_s: float = 10.0
    workers: int = 0
    cache: str = ""

    def __post_init__(self) -> None:
        check_range("timeout_s", self.timeout_s, low=0, high=86400, low_open=True)
        check_range("budget_s", self.budget_s, low=0, high=86400)
        check_range("memory_mb", self.memory_mb, low=256)
        check_range("workers", self.workers, low=0)


@dataclass
class EvalConfig:
    """Iterative-refinement evaluation run at the end of training.

    Attributes:
        corruption: corruption levels evaluated.
        iterations: refinement iterations K (iteration 0 included).
        split: ``val`` or ``test`` problems of the same dataset split, or ``humaneval``: HumanEval's
            problems as a cross-dataset held-out split for a model trained on MBPP (encoded with
            the training vocabulary, near-duplicates of training programs removed).
        programs: at most this many problems per level (0 = all of the split).
        seed: corruption seed of the first evaluation seed; seed ``s`` (0-based) corrupts with
            ``seed + s``. The same seed gives the same corrupted inputs for every model.
        seeds: evaluation seeds; numbers are means with a Student-t 95% CI over them (n=1: none).
        feedback_zeroed: also refine with the model's feedback zeroed (the baseline row that
            isolates what test feedback adds; doubles the model's share of the evaluation time).
        feedback_shuffled: also refine with each program reading another program's test
            feedback, mapped onto its lines (isolates what the *location* of the feedback adds;
            costs as much as the model's refinement; :mod:`graphrepair.feedback.shuffle`).
        search: also run the search baseline: the model's one-shot alternatives tried where
            Tarantula points, with the model's number of test executions per program
            (:mod:`graphrepair.loop.search`; one forward pass, at most the model's executions).
    """

    corruption: list[float] = field(default_factory=lambda: [0.2, 0.5, 0.75])
    iterations: int = 5
    split: Literal["val", "test", "humaneval"] = "test"
    programs: int = 0
    seed: int = 1234
    seeds: int = 1
    feedback_zeroed: bool = True
    feedback_shuffled: bool = True
    search: bool = True

    def __post_init__(self) -> None:
        for level in self.corruption:
            check_range("corruption", level, low=0, high=1)
        check_range("iterations", self.iterations, low=1)
        check_range("programs", self.programs, low=0)
        check_range("seeds", self.seeds, low=1)


@dataclass
class ExperimentConfig:
    """A whole graphrepair experiment: one YAML file in ``configs/graphrepair``.

    Attributes:
        exp: experiment id (the YAML file stem); set by the loader.
        description: one line shown at start and in reports (say plainly if it is a reduced preset).
        run_root: directory under which ``<exp>-<timestamp>/`` run directories are created.
    """

    exp: str = ""
    description: str = ""
    run_root: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(exp: str, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Load ``configs/graphrepair/<exp>.yaml`` with ``--set`` overrides.

    Raises:
        harness.config.ConfigError: unknown experiment id, unknown key or wrong type (the message
            lists what is valid).
    """
    return load_experiment(ExperimentConfig, CONFIG_DIR, exp, overrides)
