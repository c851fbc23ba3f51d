"""Database access: store configuration, the FireWorks LaunchPad, the embedded server."""

from vtc_fw.db.config import COLLECTION_KEYS, MODEL_BLOBS, DbConfig, get_launchpad
from vtc_fw.db.embedded import EmbeddedServer, ServerStatus, vtc_fw_home

__all__ = [
    "COLLECTION_KEYS",
    "MODEL_BLOBS",
    "DbConfig",
    "EmbeddedServer",
    "ServerStatus",
    "get_launchpad",
    "vtc_fw_home",
]
