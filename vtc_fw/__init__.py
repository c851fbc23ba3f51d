"""vtc-fw: polarization anisotropy of valence-to-core XES, from crystal structure to prediction."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vtc-fw")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

THREE_D_METALS: tuple[str, ...] = ("Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn")
"""The absorber elements of the method, in periodic-table order."""
