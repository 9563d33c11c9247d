"""`store-sql`: the command line, a thin layer over the public library. One module per
command group; `output` prints every result as text or, with `--json`, as JSON."""
