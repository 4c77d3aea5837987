"""Building a Dask client (LocalCluster, SLURM), setting up its workers, submitting bounded task streams."""
