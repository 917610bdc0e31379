"""One module per resource: routes and their request/response schemas."""
