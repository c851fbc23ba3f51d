"""Pydantic documents stored in MongoDB: one module per collection."""
