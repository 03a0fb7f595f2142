"""The workflow engine: stages, gates, status transitions and decisions, as plain data."""
