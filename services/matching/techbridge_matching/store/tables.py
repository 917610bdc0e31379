from sqlalchemy import MetaData

from techbridge_shared.tables import add_messaging_tables

metadata = MetaData()
outbox, inbox = add_messaging_tables(metadata)
