"""The nightly builder pipeline, for ``mrun builders/nightly.py`` (maggma's runner).

tasks → xes, structures → features, features + xes → models (trained only when new data
arrived), features + newest model → predictions. The database is the one ``vtc-fw`` uses
(``$VTC_FW_DB_FILE``, ./db.json, ./my_launchpad.yaml or the embedded default); the same
pipeline runs in-process with ``vtc-fw build``. Training settings come from the environment:
``VTC_FW_PRESET`` (default "paper"), ``VTC_FW_SEED`` (0), ``VTC_FW_N_ITER`` (100),
``VTC_FW_N_JOBS`` (1).
"""

import os

from vtc_fw.builders import nightly_builders
from vtc_fw.db.config import DbConfig

__builders__ = nightly_builders(
    DbConfig.load(),
    preset=os.environ.get("VTC_FW_PRESET", "paper"),
    seed=int(os.environ.get("VTC_FW_SEED", "0")),
    n_iter=int(os.environ.get("VTC_FW_N_ITER", "100")),
    n_jobs=int(os.environ.get("VTC_FW_N_JOBS", "1")),
)
