"""Tables, repositories and the unit of work: the only place SQLAlchemy is used."""
