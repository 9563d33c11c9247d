"""Files into the store: plan what a path holds, read it in worker threads (sources never
modified), store it incrementally through the writer, and report what happened."""
