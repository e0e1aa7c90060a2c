"""The SLAI desk (issue 11): batches received, stored first, read on the task queue."""
