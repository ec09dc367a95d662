"""jepa: latent prediction of function bodies (the teacher/student retrieval track, DESIGN.md).

The pipeline, one concept per module:

* data: :mod:`jepa.corpus` (tree-sitter extraction, static properties, churn, sources, the
  de-duplicated split by repository), :mod:`jepa.teacher` (a frozen Hugging Face model read at one
  layer, truncated above it), :mod:`jepa.store` (the SQLite corpus index and content-addressed
  safetensors shards of teacher states), driven by ``python -m jepa.prepare``;
* teacher validation: :mod:`jepa.geometry`, :mod:`jepa.probes`, ``python -m jepa.phase0``;
* students: :mod:`jepa.students` (MLP 1.1, SigPredictor 1.2–1.4/2.1/3.0, SigPredictorV2 2.2),
  :mod:`jepa.losses` (SmoothL1, InfoNCE, token SmoothL1), :mod:`jepa.negatives` (hard negatives,
  2.1), :mod:`jepa.data` and :mod:`jepa.task` (the shared trainer's task), ``python -m jepa.train``;
* evaluation: :mod:`jepa.retrieval` (exact ranks, Rank@k, MRR, baselines), ``python -m
  jepa.evaluate`` and ``python -m jepa.compare``.
"""
