"""Database access: store configuration, the FireWorks LaunchPad, the embedded server.

Importing this package makes FireWorks' id counters atomic on every server
(:mod:`vtc_fw.db.fireworks_ids`): the embedded server would otherwise hand two concurrent
workers the same launch id.
"""

from vtc_fw.db.config import COLLECTION_KEYS, MODEL_BLOBS, DbConfig, get_launchpad
from vtc_fw.db.embedded import EmbeddedServer, ServerStatus, vtc_fw_home
from vtc_fw.db.fireworks_ids import use_atomic_id_counters

use_atomic_id_counters()

__all__ = [
    "COLLECTION_KEYS",
    "MODEL_BLOBS",
    "DbConfig",
    "EmbeddedServer",
    "ServerStatus",
    "get_launchpad",
    "vtc_fw_home",
]
