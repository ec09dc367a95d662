"""Corpus: Python functions extracted with tree-sitter, de-duplicated and split by repository.

``DESIGN.md`` ("jepa: terms and semantics", *Corpus*). :mod:`~jepa.corpus.extract` turns one
source file into :class:`~jepa.corpus.extract.Function` records (signature / body split, qualified
names, static properties from :mod:`~jepa.corpus.properties`); :mod:`~jepa.corpus.sources` walks
the installed distributions or a directory of checkouts, :mod:`~jepa.corpus.pypi` a pinned list of
PyPI distributions downloaded once; :mod:`~jepa.corpus.build` filters,
de-duplicates and splits them into train/val/test by repository.
"""
