"""The shipped OQMD-ICSD oxidation cache equals what our oxidation code computes now."""

import numpy as np

from vtc_fw.science.oxidation import assign_oxidation_states
from vtc_fw.science.oxidation_cache import cached_oxidation, load_cache
from vtc_fw.sources import iter_oqmd_icsd


def test_cache_covers_every_3d_structure_and_matches_fresh_assignment():
    cache = load_cache()
    assert len(cache) == 12271
    for entry in iter_oqmd_icsd(limit=15, seed=11):
        cached = cached_oxidation(cache.get(entry.structure_id), entry.structure)
        fresh = assign_oxidation_states(entry.structure)
        assert cached is not None and cached.method == fresh.method
        if fresh.charges is None:
            assert cached.charges is None
        else:
            assert np.allclose(cached.charges, fresh.charges, atol=1e-4)


def test_cache_refuses_a_structure_it_was_not_made_for():
    entry = next(iter_oqmd_icsd(limit=1))
    row = load_cache()[entry.structure_id]
    assert cached_oxidation(row, entry.structure * (2, 1, 1)) is None
