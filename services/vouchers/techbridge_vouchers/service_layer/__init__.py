"""Use cases: each loads state through the repository, asks the domain to decide, stores the
result and the journal entry, and publishes the facts, all inside the caller's unit of work."""
