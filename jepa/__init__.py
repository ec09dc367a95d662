"""jepa: latent prediction of function bodies (teacher/student retrieval track).

Coming in later issues (see ``../shared/DESIGN.md``): a corpus of real Python functions split by
repository; a frozen code-LLM *teacher* whose mid-layer hidden states are cached on disk; *student*
models (MLP 1.1, SigPredictor 1.2/1.3, InfoNCE 1.4, hard negatives 2.1, token-level targets 2.2,
larger teacher 3.0) that predict a body's embedding from its signature; and retrieval evaluation
(Rank@1/5/10, MRR) through ``harness.report``. Nothing is implemented yet; importing this package
only documents the plan.
"""
