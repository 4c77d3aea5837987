"""Orchestration of local sharpening: per-box and per-chunk tasks, run on a Dask client or in-process."""

from .run import LocalResult, local_sharpen
from .tasks import BoxJob, render_chunk, score_box

__all__ = ["BoxJob", "LocalResult", "local_sharpen", "render_chunk", "score_box"]
