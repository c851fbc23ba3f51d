"""The screening web application: a read-only REST API (maggma resources) and pages.

Start it with ``vtc-fw serve``; build it with :func:`create_app`.
"""

import warnings

# maggma.api is deprecated in favour of emmet-api, but ships with the pinned maggma and does
# what the API needs; say so once in the docs, not on every start.
warnings.filterwarnings("ignore", message="The maggma.api module has been deprecated")

from vtc_fw.api.app import create_app  # noqa: E402

__all__ = ["create_app"]
