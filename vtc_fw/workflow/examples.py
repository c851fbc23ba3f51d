"""Workflow specifications in FireWorks' YAML that a user can ``lpad add``, written by the maker.

``python -m vtc_fw.workflow.examples [DIR]`` (re)writes them to ``workflows/`` of the checkout:
NiO, the paper's Fig. 3 reference, with the method's preset (``nio_paper.yaml``) and with the
plumbing preset (``nio_smoke.yaml``, seconds). Machine-specific values stay ``>>key<<``
references to the FWorker's ``env`` (``my_fworker.yaml``).
"""

import sys
from pathlib import Path

from fireworks import Workflow
from pymatgen.core import Structure

from vtc_fw.sources import SAMPLE_DIR
from vtc_fw.workflow.maker import XesWorkflowMaker

EXAMPLE_STRUCTURE = "29484-76263-NiO.cif"
"""The bundled sample's NiO (OQMD-ICSD), the structure of every example."""
EXAMPLE_PRESETS: dict[str, str] = {"nio_paper": "paper", "nio_smoke": "smoke"}
"""Example file stem → FEFF preset."""


def example_workflows() -> dict[str, Workflow]:
    """The example workflows by file stem."""
    structure = Structure.from_file(SAMPLE_DIR / EXAMPLE_STRUCTURE)
    structure_id = f"sample:{Path(EXAMPLE_STRUCTURE).stem}"
    return {
        stem: XesWorkflowMaker(preset=preset).make(structure, structure_id, "Ni")
        for stem, preset in EXAMPLE_PRESETS.items()
    }


def write_examples(directory: Path) -> list[Path]:
    """Write every example workflow as ``<stem>.yaml`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, workflow in example_workflows().items():
        path = directory / f"{stem}.yaml"
        workflow.to_file(str(path))
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("workflows")
    for written in write_examples(target):
        print(written)
