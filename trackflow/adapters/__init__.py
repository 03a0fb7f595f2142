"""Adapters to what trackflow stores in and talks to: AWS clients, DynamoDB stores, search."""
