"""The one compiled part: the sandbox zygote's C extension ``harness._zygote`` (its job loop,
the runner's limits, the builtins' version tag and the set-up system calls; everything else is in
pyproject.toml).

Optional: without a C compiler the build goes on and the zygote does the same in Python (a slower
job loop, ctypes for the system calls; see harness/_sandbox_child.py), with the same guarantees.
``harness.sandbox.job_loop()`` says which loop a machine uses; why the loop is in C, and what it
measured, is in docs/sandbox.md.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("harness._zygote", ["harness/_zygote.c"], optional=True)])
