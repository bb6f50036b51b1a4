"""The embedded default models and their one-time preparation."""
