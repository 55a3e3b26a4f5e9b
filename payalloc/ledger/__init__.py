"""Everything that touches SQLite: the connection, the schema, and every SQL statement."""
