"""Package discovery; everything else is in pyproject.toml.

`backends/` installs as `batchsvc_backends` (a top-level `backends` could be claimed by any other
project), a rename that pyproject's `packages.find` cannot express, so its subpackages are found
under their folder here and renamed.
"""

from setuptools import find_packages, setup

BACKENDS = "batchsvc_backends"
core = find_packages(include=["batchsvc", "batchsvc.*"])
backends = [
    BACKENDS + name.removeprefix("backends")
    for name in find_packages(include=["backends", "backends.*"])
]
setup(packages=core + backends)
