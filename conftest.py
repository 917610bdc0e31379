# Real Kafka and PostgreSQL fixtures for every test in the repository.
pytest_plugins = ["techbridge_shared.testing.fixtures"]
