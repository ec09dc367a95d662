"""The frozen teacher of the jepa track (``DESIGN.md``, jepa *Teacher*).

* :mod:`jepa.teacher.known`: the teachers this toolkit knows by name, where their weights live and
  the SHA-256 their weight file must have.
* :mod:`jepa.teacher.model`: :class:`~jepa.teacher.model.Teacher`, a Hugging Face model loaded
  frozen, in ``eval()``, truncated above the layer it is read at, that turns functions into
  signature (student input) and body (target) states without leaking the body into the inputs.
"""
