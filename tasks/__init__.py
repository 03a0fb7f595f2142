"""Celery: the app, the step tasks and the workflow that chains them."""
