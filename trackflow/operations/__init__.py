"""What operators run: resource bootstrap, dead-letter queues, capacity planning."""
