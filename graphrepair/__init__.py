"""graphrepair: iterative refinement of corrupted Python programs with test feedback.

Python programs become tree-sitter AST graphs (:mod:`graphrepair.graphs.graph`), a fraction of their leaf
tokens is masked (:mod:`graphrepair.data.corruption`), and a graph neural network
(:mod:`graphrepair.models`) restores them iteratively, running the program's unit tests in
:mod:`harness.sandbox` after each iteration and feeding per-test outcomes and coverage back.
See ``../shared/DESIGN.md`` for every term and metric.
"""
