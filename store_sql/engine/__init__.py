"""The engine: SQLite connections and how work reaches them, with no domain knowledge.

One writer connection drains a queue and commits each group of mutations in one transaction
(`writer`); a pool of read-only connections runs each read in one snapshot (`readers`); a
function runs on a connection's own thread in one hop (`thread_conn`). `database` is the
interface the domain APIs hold; `opening` and `migrate` refuse, create and upgrade files;
`pragmas` configures every connection and `wal` keeps the write-ahead log bounded.
"""
