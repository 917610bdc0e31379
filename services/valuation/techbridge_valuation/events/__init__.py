"""The topics and events this service publishes, and its consumers of others' events."""
