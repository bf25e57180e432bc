"""The database: schema, migrations, both backends and every SQL statement flor runs."""
