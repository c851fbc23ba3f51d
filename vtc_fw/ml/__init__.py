"""Machine learning, pure (no database).

The training table, the paper's protocol, the model comparison and the figures of a model.
"""
