"""Point-group symmetry: operators in the conventions users speak, asymmetric units, detection from a map.

Pure numerics (numpy/scipy, no I/O): importable by the sharpening and tiling layers.

* :mod:`.groups`: :class:`PointGroup`, :func:`parse_symmetry`, :func:`standard_groups`.
* :mod:`.asu`: the asymmetric unit (a Dirichlet domain) and the operator taking a point into it.
* :mod:`.centre`: the symmetry centre (voxel N/2 along each axis by default) and its checks.
* :mod:`.detect`: correlation of a map with its rotated copies, per operator class.
"""

from .groups import ORIENTATIONS, RELION_ICOSAHEDRAL, PointGroup, parse_symmetry, point_group, standard_groups

__all__ = ["ORIENTATIONS", "RELION_ICOSAHEDRAL", "PointGroup", "parse_symmetry", "point_group", "standard_groups"]
