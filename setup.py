"""The one compiled part: the sandbox zygote's job loop (everything else is in pyproject.toml).

Optional: without a C compiler the build goes on and the zygote serves jobs with the same loop
in Python (slower; see harness/_sandbox_child.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("harness._zygote", ["harness/_zygote.c"], optional=True)])
