"""The overall (global) pass on Dask: one task, or slab and pencil tasks with a distributed FFT."""
