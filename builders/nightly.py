"""The nightly builder pipeline, for ``mrun builders/nightly.py`` (maggma's runner).

tasks → xes, structures → features, features + xes → models (trained only when new data
arrived), features + newest model → predictions. The database is the one ``vtc-fw`` uses
(``$VTC_FW_DB_FILE``, ./db.json, ./my_launchpad.yaml or the embedded default); the same
pipeline runs in-process with ``vtc-fw build``. Training settings come from vtc-fw's one
settings object (:class:`vtc_fw.settings.VtcSettings`): ``VTC_FW_PRESET``, ``VTC_FW_SEED``,
``VTC_FW_N_ITER``, ``VTC_FW_N_JOBS``, ``VTC_FW_FEATURE_SET`` (default crystal, the best validated;
paper: the paper's protocol), ``VTC_FW_TARGET`` (default sams) and ``VTC_FW_CHEAP_LABELS``
(default unset: paper labels only; a preset such as screen: its calibrated labels too).

Loading this file takes the database's build lock (vtc_fw.db.lock) and mrun releases it when it
exits: while another build holds it (``vtc-fw build``, ``vtc-fw run``, another mrun), mrun
exits at once with one line naming the holder and builds nothing.
"""

from vtc_fw.builders import nightly_builders
from vtc_fw.db.config import DbConfig
from vtc_fw.db.lock import hold_build_lock_until_exit
from vtc_fw.errors import LockHeldError
from vtc_fw.settings import get_settings

settings = get_settings()
config = DbConfig.load()
try:
    hold_build_lock_until_exit(config, "mrun builders/nightly.py")
except LockHeldError as error:
    raise SystemExit(f"another build is running, not building: {error}") from None
__builders__ = nightly_builders(
    config,
    preset=settings.preset,
    seed=settings.seed,
    n_iter=settings.n_iter,
    n_jobs=settings.n_jobs,
    feature_set=settings.feature_set,
    target=settings.target,
    search_space=settings.search_space,
    cheap_labels=settings.cheap_labels,
    cheap_preset=settings.cheap_preset,
)
