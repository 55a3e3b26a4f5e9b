"""Use cases: one function per user action. Each write is one BEGIN IMMEDIATE transaction
(write_txn); each read (views, listings, check, the GL) one snapshot (read_txn)."""
