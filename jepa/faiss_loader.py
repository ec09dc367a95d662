"""Import FAISS with its bundled OpenBLAS set to this CPU's kernels.

faiss-cpu 1.15.1 bundles OpenBLAS 0.3.15, which does not recognise recent Xeons and falls back to
its generic Prescott kernels, which makes its sgemm, and so ``IndexFlatIP`` search, several times
slower (``docs/jepa.md``). :func:`import_faiss` sets ``OPENBLAS_CORETYPE=SkylakeX`` before
FAISS loads when the CPU has AVX-512 and the variable is not set already (the user's choice wins);
elsewhere it changes nothing.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

__all__ = ["has_avx512", "import_faiss"]


def has_avx512() -> bool:
    """Whether the CPU has the AVX-512 subsets that OpenBLAS's SkylakeX kernels use (avx512f, bw,
    dq, vl), from ``/proc/cpuinfo`` (``False`` where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags)


def import_faiss() -> ModuleType:
    """``faiss``, imported after choosing its OpenBLAS kernels (see the module docstring)."""
    if "faiss" not in sys.modules and "OPENBLAS_CORETYPE" not in os.environ and has_avx512():
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    import faiss

    return faiss
