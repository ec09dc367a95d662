"""Test feedback as a signal: spectrum-based fault localization (Tarantula, Ochiai, DStar) from
per-test outcomes and coverage (:mod:`.spectrum`).
"""
