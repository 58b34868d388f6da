"""Persistence behind small interfaces; SQLite (sqlite-utils) shared by all workers by default."""
