"""Provenance stored in every document: the versions of the packages results depend on."""

import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

TRACKED_PACKAGES: tuple[str, ...] = (
    "vtc-fw",
    "feff10-rs",
    "pymatgen",
    "numpy",
    "scipy",
    "spglib",
    "scikit-learn",
    "maggma",
    "fireworks",
    "pymongo",
)


@lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    found = [("python", platform.python_version())]
    for package in TRACKED_PACKAGES:
        try:
            found.append((package, version(package)))
        except PackageNotFoundError:
            found.append((package, "not installed"))
    return tuple(found)


def package_versions() -> dict[str, str]:
    """Python's and the tracked packages' versions (read once per process; a fresh dict)."""
    return dict(_versions())
