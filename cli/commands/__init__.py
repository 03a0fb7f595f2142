"""The `trackflow` commands, a module for each audience (and for each production role, so that
a role's process imports only its own needs). trackflow.cli.main lists them by name."""
