"""Getting batches out: a streaming zip, one job's outputs, delivery to a folder. No Qt here."""
