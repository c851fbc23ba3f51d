"""Reproducible samples of structures, balanced over the 3d elements."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

import numpy as np

from vtc_fw.sources.entry import StructureEntry

Item = TypeVar("Item")


def _entry_metals(entry: StructureEntry) -> Iterable[str]:
    return entry.three_d_metals


@overload
def stratified_sample(
    items: Sequence[StructureEntry],
    n: int,
    seed: int | None,
    labels: Callable[[StructureEntry], Iterable[str]] = ...,
    in_draw_order: bool = ...,
) -> list[StructureEntry]: ...


@overload
def stratified_sample(
    items: Sequence[Item],
    n: int,
    seed: int | None,
    labels: Callable[[Item], Iterable[str]],
    in_draw_order: bool = ...,
) -> list[Item]: ...


def stratified_sample(
    items: Sequence[Any],
    n: int,
    seed: int | None,
    labels: Callable[[Any], Iterable[str]] = _entry_metals,
    in_draw_order: bool = False,
) -> list[Any]:
    """Draw ``n`` items, taking turns over the strata so that scarce elements are not crowded out.

    Each item belongs to every stratum named by ``labels`` (a structure with Fe and Co counts for
    both; one with none forms the stratum ``""``). Strata are visited in sorted order, each drawing
    its next not-yet-chosen item from its own shuffled list, until ``n`` items are chosen or all
    strata are exhausted. The result is therefore balanced: Sc, scarce in ICSD, keeps as many
    structures as the sample allows instead of its ~0.4 % share.

    Args:
        items: The population (StructureEntry by default, any items with a ``labels`` function).
        n: Sample size; the whole population (in input order) when it has at most ``n`` items.
        seed: Seed of numpy's default generator; the same seed gives the same sample.
        labels: The strata an item belongs to; by default the 3d metals of a StructureEntry.
        in_draw_order: Return the items in the order drawn (strata interleaved), so that any
            prefix of the sample is balanced too, e.g. for work computed in increments.

    Returns:
        The chosen items, in their input order (or draw order).
    """
    if n < 0:
        raise ValueError(f"sample size must be non-negative, got {n}")
    if n >= len(items):
        return list(items)
    rng = np.random.default_rng(seed)
    strata: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        for label in set(labels(item)) or {""}:
            strata.setdefault(label, []).append(index)
    queues = {label: list(rng.permutation(indices)) for label, indices in sorted(strata.items())}
    chosen: dict[int, None] = {}
    while len(chosen) < n:
        for queue in queues.values():
            while queue and queue[-1] in chosen:
                queue.pop()
            if queue:
                chosen[int(queue.pop())] = None
            if len(chosen) == n:
                break
    order = list(chosen) if in_draw_order else sorted(chosen)
    return [items[index] for index in order]
