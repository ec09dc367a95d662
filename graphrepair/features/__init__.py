"""Node features: the 5-feature variant with per-test feedback records (:mod:`.encoding`) and the
6-feature variant with a per-node test signal (:mod:`.variants`).
"""
