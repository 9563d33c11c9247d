"""Session maintenance: the gateway's cleanup policy (prune, cap, rotate, disk budget) applied
to the store (`store.maintenance`)."""
