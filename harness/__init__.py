"""Shared experiment machinery for both research tracks.

Modules: ``sandbox`` (run a program's tests in isolation with per-test coverage), ``run`` (its
CLI), ``config`` (experiment YAML -> typed dataclasses), ``trainer`` (the one trainer),
``report`` (the one reporter). This package imports neither ``graphrepair`` nor ``jepa``.
"""
