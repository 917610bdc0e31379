"""The gateway's use cases: each function takes the context and one unit of work's worth of input."""
