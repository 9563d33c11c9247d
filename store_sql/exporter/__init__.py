"""The store back to files: export a state directory (or one transcript) byte for byte, and
verify a directory against the store without writing."""
