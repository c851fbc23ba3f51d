"""FEFF10 polarized VtC-XES: input set and presets, runner, parser, retry ladder, record engine."""

from vtc_fw.errors import FeffRunError
from vtc_fw.feff.engine import RecordSpectra, SiteSpectra, compute_record_spectra
from vtc_fw.feff.inputs import PRESETS, XesInputSet
from vtc_fw.feff.ladder import LADDER, Attempt

__all__ = [
    "LADDER",
    "PRESETS",
    "Attempt",
    "FeffRunError",
    "RecordSpectra",
    "SiteSpectra",
    "XesInputSet",
    "compute_record_spectra",
]
