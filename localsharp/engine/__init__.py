"""Running sharpening on Dask (or in this process), in three subpackages:

* :mod:`.overall` — the overall (global) pass of a map too big for one worker: slab and pencil
  tasks, the distributed Fourier transform (:mod:`.overall.dfft`), and ``global_sharpen`` on a client;
* :mod:`.cluster` — building a client: LocalCluster, SLURM (dask-jobqueue), worker set-up, bounded
  task submission;
* :mod:`.local` — the local-sharpening run: its plan, box and blend passes and their tasks, inputs
  read by region, resume and the result.
"""

from .local.run import LocalMap, LocalResult, local_sharpen
from .local.tasks import BoxJob, render_tile, score_block

__all__ = ["BoxJob", "LocalMap", "LocalResult", "local_sharpen", "render_tile", "score_block"]
