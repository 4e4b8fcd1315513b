"""The cloud's database: SQLite (embedded, the default) or PostgreSQL, chosen by
DATABASE_URL. One store implementation runs over both: store functions are
plain synchronous functions taking a `Connection`, run on the database's own
worker threads (`Database.read` / `Database.write`), so the event loop never
waits on a disk or a socket to PostgreSQL.
"""

from cloud.db.connection import Connection, DatabaseUrlError, connect
from cloud.db.database import Database

__all__ = ["Connection", "Database", "DatabaseUrlError", "connect"]
