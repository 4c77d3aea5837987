"""User options of a global sharpening run, validated once.

:class:`SharpenOptions` gathers what is not part of the search itself (map
preparation, composition, box choice, fixed sharpening values) next to a
:class:`~localsharp.sharpening.search.SearchConfig`.  No cluster or I/O knobs
live here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .sharpening.search import SearchConfig


@dataclass(frozen=True)
class SharpenOptions:
    """Everything that shapes a global sharpening, except the input map.

    Attributes
    ----------
    resolution : float
        Nominal resolution (Å), required.
    search : SearchConfig
        Search methods, grid, target, calibration.
    d_min_ratio : float
        Fourier cut-off as a fraction of the resolution (0.833).
    remove_aniso : bool
        Remove anisotropy before sharpening (docs/methods.md, overall B and anisotropy).
    solvent_content, molecular_mass, sequence, copies
        Composition overrides (docs/methods.md, solvent fraction); otherwise estimated from the map.
    density_select : bool
        Determine the sharpening on the density-selected box (docs/methods.md, analysis box).
    max_box_fraction : float
        The density-selected box may hold at most this fraction of the map.
    molecule_boxes : int, optional
        When the density-selected box holds more (a hollow or spread-out map), analyse up to this
        many boxes of ``box_size`` where the molecule is densest (default: as many as 160³ voxels
        hold; :mod:`localsharp.sharpening.region`); 0 analyses the whole map instead, as the reference does.
    box_center : tuple of float, optional
        Centre (Å, x, y, z, in the map's frame) of a fixed analysis box.
    box_size : tuple of int
        Size (voxels, x, y, z) of that box, or of the segmentation box.
    box_in_auto_sharpen : bool
        Analyse a ``box_size`` box centred on the largest connected region of
        the segmented map (docs/methods.md, analysis box) instead of the density-selected box.
    use_weak_density : bool
        Centre the segmentation box on a weaker region (implies
        ``box_in_auto_sharpen``).
    soft_mask : bool
        Give boxes cut around a centre a buffer of 1.5 × resolution and a soft
        edge (σ = resolution) before their Fourier transform.
    b_sharpen, b_iso, resolution_dependent_b
        Fixed sharpening: applied directly, no search.
    discard_if_worse : bool
        Keep the input map when it scores higher than the sharpened one
        (default True: the paper's intent; the reference's default is off).
    ignore_map_limitations : bool
        Sharpen even a map whose header says it is already sharpened (or an
        extracted asymmetric unit); refused by default (docs/methods.md, input checks).
    """

    resolution: float
    search: SearchConfig = field(default_factory=SearchConfig)
    d_min_ratio: float = 0.833
    remove_aniso: bool = True
    solvent_content: float | None = None
    molecular_mass: float | None = None
    sequence: str | None = None
    copies: int = 1
    density_select: bool = True
    max_box_fraction: float = 0.5
    molecule_boxes: int | None = None
    box_center: tuple[float, float, float] | None = None
    box_size: tuple[int, int, int] = (40, 40, 40)
    box_in_auto_sharpen: bool = False
    use_weak_density: bool = False
    soft_mask: bool = True
    b_sharpen: float | None = None
    b_iso: float | None = None
    resolution_dependent_b: tuple[float, float, float] | None = None
    discard_if_worse: bool = True
    ignore_map_limitations: bool = False

    def __post_init__(self) -> None:
        if len(self.box_size) != 3 or any(int(v) < 8 for v in self.box_size):
            raise ConfigError(f"box size must be three numbers of voxels, each at least 8, got {tuple(self.box_size)}")
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise ConfigError(f"resolution must be a positive number of Å, got {self.resolution}")
        for name in ("b_sharpen", "b_iso", "solvent_content", "molecular_mass"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name.replace('_', '-')} must be a finite number, got {value}")
        if self.resolution_dependent_b is not None and not all(math.isfinite(v) for v in self.resolution_dependent_b):
            raise ConfigError(f"resolution-dependent-b must be finite numbers, got {self.resolution_dependent_b}")
        if not 0.1 <= self.d_min_ratio <= 1.0:
            raise ConfigError(f"d_min_ratio must lie in [0.1, 1], got {self.d_min_ratio}")
        if not 0 < self.max_box_fraction <= 1:
            raise ConfigError(f"max_box_fraction must lie in (0, 1], got {self.max_box_fraction}")
        if self.molecule_boxes is not None and (int(self.molecule_boxes) != self.molecule_boxes
                                                or self.molecule_boxes < 0):
            raise ConfigError(f"molecule-boxes must be a whole number >= 0, got {self.molecule_boxes}")
        if self.copies < 1:
            raise ConfigError(f"copies must be at least 1, got {self.copies}")
        fixed = [n for n in ("b_sharpen", "b_iso", "resolution_dependent_b") if getattr(self, n) is not None]
        if len(fixed) > 1:
            raise ConfigError(f"give at most one of --b-sharpen, --b-iso, --resolution-dependent-b (got {fixed})")

    @property
    def fixed_sharpening(self) -> bool:
        """True when the user fixed the sharpening (no search)."""
        return any(v is not None for v in (self.b_sharpen, self.b_iso, self.resolution_dependent_b))

    def replace(self, **changes: Any) -> "SharpenOptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "search"}
        out["search"] = self.search.to_dict()
        if self.sequence is not None:
            out["sequence"] = f"{len(self.sequence)} characters"
        return out


@dataclass(frozen=True)
class LocalOptions:
    """How local sharpening tiles the map (docs/methods.md, local sharpening); the search itself is a :class:`SharpenOptions`.

    Attributes
    ----------
    box_size : int
        Core edge of each box (voxels); boxes overlap by ``box_size - stride``.
    stride : int
        Largest spacing of box centres (voxels).
    smoothing_radius : float, optional
        R of the blending weight ``exp(-r²/2R²)`` (Å); default ⅔ of the mean
        nearest-neighbour distance between box centres, at least ⅔ of the stride.
    soft_mask : bool
        Buffer each box by 1.5 × resolution and taper it to zero at its faces.
    chunk : int
        Edge of the output chunks (voxels).
    task_block : int
        Boxes per search task along each axis: a task searches the (up to
        ``task_block³``) neighbouring boxes of one block of the box grid.
    tile_chunks : int
        Output chunks per render task along each axis (a tile of
        ``(tile_chunks · chunk)³`` voxels, written by one task).
    shrink : bool
        Model-free mode: render each box's sharpening shrunk toward the overall sharpening as
        far as its score curve's noise allows, never blurring the overall map, and not at all
        when the overall sharpening blurs the map (:mod:`localsharp.sharpening.shrinkage`); False
        renders every box at its search's pick.  The half-map and model modes render each box's
        own scale factors either way.
    symmetry_mates : str
        A symmetric run (``local_sharpen(..., symmetry=...)``): how the boxes outside the searched
        asymmetric unit are made.  ``"images"`` (the default): the searched boxes are blended at
        their own centres and at every symmetry image of them, each image with its source's
        outcome and a weight that depends only on the distance to its centre (a ball inside its
        core), so the blend keeps the map's symmetry (docs/local_sharpening.md); each grid box's row
        then names the searched box whose image lies nearest to it.  ``"nearest"``: the grid's
        boxes are blended, each mate with the outcome of the searched box whose image lies nearest
        to it; ``"interpolate"``: the same with a Gaussian-weighted mean of the sharpenings of the
        searched boxes whose images lie within a grid cell's diagonal of it.
    symmetry_margin : float
        A symmetric run: the searched region is the asymmetric unit grown by this many Å
        (0: the asymmetric unit itself).

    The result does not depend on ``task_block``, ``tile_chunks`` or the number
    of workers, bit for bit.
    """

    box_size: int = 40
    stride: int = 20
    smoothing_radius: float | None = None
    soft_mask: bool = True
    chunk: int = 64
    task_block: int = 3
    tile_chunks: int = 2
    shrink: bool = True
    symmetry_mates: str = "images"
    symmetry_margin: float = 0.0

    def __post_init__(self) -> None:
        if not 8 <= self.box_size:
            raise ConfigError(f"local box size must be at least 8 voxels, got {self.box_size}")
        if not 1 <= self.stride <= self.box_size:
            raise ConfigError(f"stride must lie in 1…box size ({self.box_size}) voxels, got {self.stride}; "
                              "a larger stride would leave gaps between boxes")
        if self.smoothing_radius is not None and not (self.smoothing_radius > 0 and math.isfinite(self.smoothing_radius)):
            raise ConfigError(f"smoothing radius must be a positive number of Å, got {self.smoothing_radius}")
        if self.chunk < 8:
            raise ConfigError(f"chunk edge must be at least 8 voxels, got {self.chunk}")
        if self.task_block < 1:
            raise ConfigError(f"boxes per task edge must be at least 1, got {self.task_block}")
        if self.tile_chunks < 1:
            raise ConfigError(f"chunks per render tile edge must be at least 1, got {self.tile_chunks}")
        if self.symmetry_mates not in ("images", "interpolate", "nearest"):
            raise ConfigError("symmetry mates must be 'images', 'nearest' or 'interpolate', "
                              f"got {self.symmetry_mates!r}")
        if not (self.symmetry_margin >= 0 and math.isfinite(self.symmetry_margin)):
            raise ConfigError(f"symmetry margin must be zero or a positive number of Å, got {self.symmetry_margin}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
