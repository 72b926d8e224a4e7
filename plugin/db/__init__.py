"""Database: declarative base, engines for SQLite and PostgreSQL, the unit of work."""
