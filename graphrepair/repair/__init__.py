"""Repairing real buggy programs: the localize-mask-refill loop (:mod:`.loop`), the trained refiner as
its proposer (:mod:`.proposer`), real one-line mutants (:mod:`.mutants`); ``python -m
graphrepair.repair`` runs :mod:`.cli`.
"""
