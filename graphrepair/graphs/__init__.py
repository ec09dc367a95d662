"""Program graphs: the tree-sitter schema (:mod:`.schema`), the graph with an exact source round trip
(:mod:`.graph`), the vocabulary (:mod:`.vocab`) and the on-disk graph cache (:mod:`.cache`).
"""
