"""The session index: one JSON entry per session key, per agent (`store.sessions`), with the
columns copied out of each entry for indexed reads."""
