"""Machine learning, pure (no database): the training table, the paper's protocol, the model
comparison and the figures of a trained model."""
