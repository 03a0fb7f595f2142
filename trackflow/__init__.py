"""trackflow: the audio upload pipeline.

This package holds what every part shares (settings, AWS clients, state stores, logging); its
rooms consumer/, tasks/, media/, api/ and cli/ sit at the top of the repository and import as
trackflow.consumer, trackflow.tasks, and so on.
"""
