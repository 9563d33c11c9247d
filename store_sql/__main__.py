"""`python -m store_sql` is the `store-sql` command."""

from store_sql.cli.main import run

run()
