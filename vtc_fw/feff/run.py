"""Running FEFF10 stages in a work directory: in-process ``feff10`` or an external executable.

The SCF stages (rdinp, atomic, pot, screen) and the site's Green's function (xsph, fms) depend on
the site only; the polarization stages (rdinp, xsph, mkgtr, path, genfmt, ff2x) run on copies of
the site directory, one per polarization. An external FEFF (atomate's ``feff_cmd`` convention,
e.g. ``"feff"``; split into words and run without a shell) runs every module in one call; the
CONTROL card then switches the SCF modules on or off. FEFF's CONTROL flag of fms also gates
mkgtr, so an external FEFF recomputes the Green's function in every polarization run: only
in-process runs compute it once per site.
"""

import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vtc_fw.errors import FeffError
from vtc_fw.feff.inputs import XesInputSet

SCF_STAGES: tuple[str, ...] = ("rdinp", "atomic", "pot", "screen")
"""Stages whose output depends on the site but not on the polarization."""
FMS_STAGES: tuple[str, ...] = ("rdinp", "xsph", "fms")
"""In-process stages of the site's full-multiple-scattering Green's function (``gg.bin``).

Run once per site after the SCF, without a polarization: ``gg.bin`` and ``phase.bin`` are
byte-identical for every polarization, and a polarization run that reuses them writes the same
``xmu.dat`` as one that recomputes them (``benchmarks/feff_shared_fms.py``)."""
POLARIZATION_STAGES: tuple[str, ...] = ("rdinp", "xsph", "mkgtr", "path", "genfmt", "ff2x")
"""Stages run once per polarization on a copy of the site directory (in-process).

xsph is repeated because its cross-section file depends on the polarization; it is cheap."""
MALLOC_TUNABLES = "glibc.malloc.top_pad=67108864"
"""glibc allocator setting of the FEFF processes: keep 64 MiB free at the top of each arena.

The SCF of some records frees and re-allocates a 25 MiB block thousands of times; by default
glibc hands it back to the kernel on every free (``madvise``) and faults it in again on every
reuse, which costs up to a fifth of the stage's CPU time in the kernel (Sc5NCl8:Sc, site 10:
11 M page faults, 23 of 134 CPU-s). With the pad the outputs are bit-identical and that time is
gone (``benchmarks/feff_malloc.py``)."""
FEFF_LOG = "feff.stdout"
"""File in the work directory that receives FEFF's terminal output."""
EXTERNAL_CONTROL: dict[tuple[str, ...], str] = {
    SCF_STAGES: "1 0 0 0 0 0",
    POLARIZATION_STAGES: "0 1 1 1 1 1",
}
"""CONTROL line of an external FEFF run per stage group: a polarization run includes fms."""


@dataclass
class FeffCall:
    """Timing of one FEFF invocation.

    Attributes:
        stages: Wall seconds per stage name (one entry ``"feff"`` for an external run).
        wall_s: Wall seconds of the call.
        cpu_s: CPU seconds of the FEFF processes (user + system of reaped children).
    """

    stages: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0


def raise_stack_limit() -> None:
    """Lift the soft stack limit to the hard one: FEFF modules crash on deep stacks otherwise.

    Child processes (feff10 workers, an external FEFF) inherit the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_STACK, (hard, hard))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stages(
    inputs: XesInputSet,
    directory: Path,
    stages: tuple[str, ...],
    feff_cmd: str | None = None,
    timeout_s: float | None = None,
    malloc_tunables: str = MALLOC_TUNABLES,
) -> FeffCall:
    """Write ``feff.inp`` into ``directory`` and run the given stages there.

    Args:
        inputs: The input set (its polarization included).
        directory: Work directory; created if needed, may hold an earlier SCF's output.
        stages: :data:`SCF_STAGES`, :data:`FMS_STAGES` (in-process only) or
            :data:`POLARIZATION_STAGES`.
        feff_cmd: External FEFF command run with ``directory`` as working directory; None runs
            the ``feff10`` package in-process.
        timeout_s: Wall-clock limit of this call, s (None: no limit).
        malloc_tunables: glibc tunables added to ``GLIBC_TUNABLES`` of the FEFF processes
            ("" leaves the environment as it is).

    Raises:
        FeffError: ``timeout`` or ``nonzero_exit`` (with FEFF's message).
        ValueError: :data:`FMS_STAGES` with ``feff_cmd``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    raise_stack_limit()
    cpu_before, start = _children_cpu_s(), time.perf_counter()
    with feff_environment(malloc_tunables):
        if feff_cmd is None:
            stage_seconds = _run_in_process(inputs, directory, stages, timeout_s)
        else:
            stage_seconds = _run_external(inputs, directory, stages, feff_cmd, timeout_s)
    return FeffCall(
        stages=stage_seconds,
        wall_s=time.perf_counter() - start,
        cpu_s=_children_cpu_s() - cpu_before,
    )


@contextmanager
def feff_environment(malloc_tunables: str) -> Iterator[None]:
    """``GLIBC_TUNABLES`` with ``malloc_tunables`` appended while FEFF processes are started.

    glibc reads the variable when a process starts, so this process is unaffected; its FEFF
    children (feff10's workers, an external FEFF) inherit it. A tunable the user already set
    keeps the user's value.
    """
    previous = os.environ.get("GLIBC_TUNABLES")
    set_by_user = {item.split("=")[0] for item in (previous or "").split(":")}
    added = [
        item
        for item in malloc_tunables.split(":")
        if item and item.split("=")[0] not in set_by_user
    ]
    if added:
        os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, [previous, *added]))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = previous


def _run_in_process(
    inputs: XesInputSet, directory: Path, stages: tuple[str, ...], timeout_s: float | None
) -> dict[str, float]:
    import feff10

    config = feff10.FeffConfig(
        str(directory),
        inputs.feff_input(),
        stages=[feff10.Stage.from_name(name) for name in stages],
        stage_timeout=timeout_s,
    )
    try:
        with _output_to(directory / FEFF_LOG):
            result = feff10.FeffPipeline(config).run()
    except feff10.FeffError as error:
        reason = "timeout" if "timed out" in str(error).lower() else "nonzero_exit"
        raise FeffError(f"feff10 failed in {directory.name}: {error}", reason=reason) from error
    inputs.write_file(directory / "feff.inp")  # feff10 writes a terse copy: keep the readable one
    return {s.stage.executable_name: s.duration_secs for s in result.stages}


def _run_external(
    inputs: XesInputSet,
    directory: Path,
    stages: tuple[str, ...],
    feff_cmd: str,
    timeout_s: float | None,
) -> dict[str, float]:
    if stages not in EXTERNAL_CONTROL:
        raise ValueError(f"an external FEFF runs the SCF or a polarization, not {stages}")
    control = EXTERNAL_CONTROL[stages]
    (directory / "feff.inp").write_text(inputs.to_str(control))
    start = time.perf_counter()
    try:  # no shell: the command's words are the executable and its arguments, nothing more
        completed = subprocess.run(
            shlex.split(feff_cmd),
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as error:
        raise FeffError(f"{feff_cmd!r} exceeded {timeout_s} s", reason="timeout") from error
    except (OSError, ValueError) as error:  # not found, not executable, unbalanced quotes
        raise FeffError(f"cannot run {feff_cmd!r}: {error}", reason="feff_not_found") from error
    (directory / FEFF_LOG).write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-3:]
        raise FeffError(
            f"{feff_cmd!r} exited with {completed.returncode}: {' | '.join(tail)}",
            reason="nonzero_exit",
        )
    return {"feff": time.perf_counter() - start}


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr file descriptors (inherited by feff10's workers) to a file.

    FEFF's Fortran prints progress on file descriptor 1, which would otherwise mix with the
    caller's output (e.g. the JSON of ``vtc-fw sams --json``).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def copy_scf(scf_directory: Path, directory: Path) -> Path:
    """A fresh copy of a site directory (SCF and Green's function) for one polarization run."""
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(scf_directory, directory)
    return directory


def prune_copies(scf_directory: Path, directory: Path) -> int:
    """Delete the files of a polarization directory that are untouched copies of the SCF's.

    ``copytree`` keeps modification times, so a file with the SCF file's size and mtime was not
    rewritten by the polarization stages. Keeps the archive to one copy of the potentials.

    Returns:
        The number of files removed.
    """
    removed = 0
    for path in directory.iterdir():
        original = scf_directory / path.name
        if path.is_file() and original.is_file():
            mine, theirs = path.stat(), original.stat()
            if (mine.st_size, mine.st_mtime_ns) == (theirs.st_size, theirs.st_mtime_ns):
                path.unlink()
                removed += 1
    return removed
