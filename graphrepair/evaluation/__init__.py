"""Iterative-refinement evaluation: resumable (seed, level) units with real test execution
(:mod:`.evaluate`), their aggregation, tables and plots (:mod:`.report`) and the cross-run
comparison table (:mod:`.compare`).
"""
