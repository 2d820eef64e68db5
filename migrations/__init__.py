"""The numbered SQL migrations, shipped as package data (see setup.py and migrate.py)."""
