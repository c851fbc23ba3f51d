"""Application services the command line runs.

The main job and its sample policy, screening, the model report, dataset transfer, timing,
the Fig. 3 distortion series.
"""
