"""The HTTP API for client apps."""
