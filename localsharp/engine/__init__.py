"""Orchestration of local sharpening: box-search and render tasks, run on a Dask client or in-process."""

from .run import LocalMap, LocalResult, local_sharpen
from .tasks import BoxJob, render_tile, score_block

__all__ = ["BoxJob", "LocalMap", "LocalResult", "local_sharpen", "render_tile", "score_block"]
