"""The gateway consumes every platform topic to feed webhook subscriptions and event streams;
it publishes nothing."""
