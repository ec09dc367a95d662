"""Problems and their preparation: benchmark loaders and splits (:mod:`.problems`), near-duplicate
removal (:mod:`.dedup`), seeded leaf-token corruption (:mod:`.corruption`) and the per-experiment
pipeline problems -> graphs -> vocabulary -> encoded programs (:mod:`.dataset`).
"""
