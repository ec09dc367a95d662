"""jepa: latent prediction of function bodies (teacher/student retrieval track).

Built so far (issue 18, in progress): the corpus of real Python functions split by repository
(:mod:`jepa.corpus`: tree-sitter extraction, static properties, sources, de-duplication and the
split), its SQLite index (:mod:`jepa.store`) and ``python -m jepa.prepare`` (corpus stage).

Coming (see ``../shared/DESIGN.md``): a frozen code-LLM *teacher* whose mid-layer hidden states are
cached in the store; *student* models (MLP 1.1, SigPredictor 1.2/1.3, InfoNCE 1.4, hard negatives
2.1, token-level targets 2.2, larger teacher 3.0) that predict a body's embedding from its
signature; and retrieval evaluation (Rank@1/5/10, MRR) through ``harness.report``.
"""
