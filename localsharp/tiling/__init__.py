"""Tiling of a map into overlapping analysis boxes and blending of their results (pure numpy)."""

from .blend import background_weight, blend_into, box_weight, smoothing_radius
from .boxes import Box, box_grid, chunk_grid, intersect

__all__ = ["Box", "background_weight", "blend_into", "box_grid", "box_weight", "chunk_grid", "intersect",
           "smoothing_radius"]
