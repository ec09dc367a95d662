"""The refinement loop: predict -> decode -> run tests -> feedback (:mod:`.refine`), and its training
replay with scheduled sampling (:mod:`.training`) over a corruption curriculum (:mod:`.curriculum`).
"""
