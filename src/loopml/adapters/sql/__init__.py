"""The metadata store on SQLAlchemy: SQLite by default, PostgreSQL for teams."""
