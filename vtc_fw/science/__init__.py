"""The science, pure: no database, FireWorks or FEFF (enforced by ruff and import-linter).

Clusters, moment tensors, oxidation states, records, features and the spectral anisotropy.
"""
