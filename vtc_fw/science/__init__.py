"""The science: clusters, moment tensors, oxidation states, records, features and the
spectral anisotropy. Pure: no database, FireWorks or FEFF (enforced by ruff and import-linter)."""
