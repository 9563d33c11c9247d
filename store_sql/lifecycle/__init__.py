"""Session life cycle: reset, delete with archive, purge of an agent (`store.lifecycle`)."""
