"""The nightly builder pipeline, for ``mrun builders/nightly.py`` (maggma's runner).

tasks → xes, structures → features, features + xes → models (trained only when new data
arrived), features + newest model → predictions. The database is the one ``vtc-fw`` uses
(``$VTC_FW_DB_FILE``, ./db.json, ./my_launchpad.yaml or the embedded default); the same
pipeline runs in-process with ``vtc-fw build``. Training settings come from vtc-fw's one
settings object (:class:`vtc_fw.settings.VtcSettings`): ``VTC_FW_PRESET``, ``VTC_FW_SEED``,
``VTC_FW_N_ITER``, ``VTC_FW_N_JOBS``.
"""

from vtc_fw.builders import nightly_builders
from vtc_fw.db.config import DbConfig
from vtc_fw.settings import get_settings

settings = get_settings()
__builders__ = nightly_builders(
    DbConfig.load(),
    preset=settings.preset,
    seed=settings.seed,
    n_iter=settings.n_iter,
    n_jobs=settings.n_jobs,
)
