"""A 3-D real FFT of a map too big for one worker, as Dask tasks on zarr intermediates.

The coefficients live in a complex64 zarr array of shape ``(nz, ny, nx//2 + 1)`` chunked
``(t, ty, nx//2 + 1)`` (``ty <= t``, see :class:`SpectrumArray`):

* :func:`forward_slabs`: one task per z-slab ``[z0:z0+t]`` produces the real slab (any
  picklable function of its bounds), does the 2-D rfft over ``(y, x)`` and writes its rows;
* :func:`pencil_pass`: one task per y-slab ``[:, y0:y0+ty, :]`` reads the pencil, optionally
  FFTs it along z, runs a picklable ``work(pencil, y0, y1)`` that may change it in place and
  returns small statistics, then optionally inverse-FFTs along z and writes it to another array
  (never back into the one it read, so a task run twice gives the same result);
* :func:`inverse_slabs`: one task per z-slab reads its rows, does the inverse 2-D rfft and
  hands the real slab to a picklable ``consume(z0, z1, slab)``.

A task holds one slab or pencil (``t·ny·nx`` floats or ``nz·t·(nx/2+1)`` complex), never the
map, and every chunk has one writer per pass.  Each such array takes about the map's float32 bytes;
the overall pass keeps at most three at once (plus its local-variance map: ~4× the map on disk).  The result equals ``scipy.fft.rfftn`` of the
map to float32 rounding (the same split of the transform into axes; the test compares).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import zarr

from ...kernels import slab_fft


#: Largest y-pencil (complex64 bytes) a pencil task holds.
PENCIL_BYTES = 128 * 2**20


class Runner:
    """Runs a function over items on a Dask client, or in this process when ``client`` is None."""

    def __init__(self, client: Any = None) -> None:
        self.client = client

    def map(self, fn: Callable, items: Sequence) -> list:
        """``[fn(item) for item in items]``, as tasks when there is a client (results in order)."""
        if self.client is None:
            return [fn(item) for item in items]
        futures = self.client.map(fn, list(items), pure=False)
        return self.client.gather(futures)

    def call(self, fn: Callable, *args: Any) -> Any:
        """``fn(*args)`` as one task (or here)."""
        if self.client is None:
            return fn(*args)
        return self.client.submit(fn, *args, pure=False).result()


@dataclass(frozen=True)
class SpectrumArray:
    """A complex64 zarr array of rfft coefficients of a map of ``shape``.

    z-slabs are ``t`` thick; y-pencils are ``t`` thick too unless that would exceed
    :data:`PENCIL_BYTES` (a 1024³ map gets 31-row pencils of 128 MB).
    """

    path: str
    shape: tuple[int, int, int]
    t: int

    @property
    def ty(self) -> int:
        nz, _, nh = self.rfft_shape
        return max(1, min(self.t, PENCIL_BYTES // (nz * nh * 8)))

    @property
    def rfft_shape(self) -> tuple[int, int, int]:
        nz, ny, nx = self.shape
        return (nz, ny, nx // 2 + 1)

    def z_slabs(self) -> list[tuple[int, int]]:
        return _spans(self.shape[0], self.t)

    def y_slabs(self) -> list[tuple[int, int]]:
        return _spans(self.shape[1], self.ty)

    def create(self) -> "SpectrumArray":
        nh = self.rfft_shape[2]
        zarr.create_array(store=self.path, shape=self.rfft_shape, chunks=(self.t, self.ty, nh), dtype="complex64",
                          fill_value=0j, compressors=None, overwrite=True)
        return self

    def like(self, path: str) -> "SpectrumArray":
        """A new (created) array of the same layout at ``path``."""
        return SpectrumArray(path, self.shape, self.t).create()

    def open(self) -> zarr.Array:
        return zarr.open_array(self.path, mode="r+")

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _spans(n: int, t: int) -> list[tuple[int, int]]:
    return [(a, min(a + t, n)) for a in range(0, n, t)]


def _forward_task(array: SpectrumArray, produce: Callable, span: tuple[int, int]) -> Any:
    z0, z1 = span
    slab, stats = produce(z0, z1)
    array.open()[z0:z1] = slab_fft.rfft2_slab(slab)
    return stats


def forward_slabs(runner: Runner, array: SpectrumArray, produce: Callable) -> list:
    """2-D rfft of every z-slab ``produce(z0, z1) -> (real slab, stats)`` into ``array``; the stats in z order."""
    return runner.map(partial(_forward_task, array, produce), array.z_slabs())


def _pencil_task(array: SpectrumArray, work: Callable, forward: bool, inverse: bool, out: SpectrumArray | None,
                 span: tuple[int, int]) -> Any:
    y0, y1 = span
    pencil = np.asarray(array.open()[:, y0:y1, :])
    if forward:
        pencil = slab_fft.fft_z(pencil)
    stats = work(pencil, y0, y1)
    if inverse:
        pencil = slab_fft.fft_z(pencil, inverse=True)
    if out is not None:
        out.open()[:, y0:y1, :] = pencil.astype(np.complex64, copy=False)
    return stats


def pencil_pass(runner: Runner, array: SpectrumArray, work: Callable, *, forward: bool = False,
                inverse: bool = False, out: SpectrumArray | None = None) -> list:
    """Run ``work(pencil, y0, y1) -> stats`` on every y-pencil (see the module notes); the stats in y order.

    The pencils go to ``out`` (an array of the same layout) when given.  They are never written back
    into ``array``, so a task that runs twice (a lost worker) computes the same thing again.
    """
    return runner.map(partial(_pencil_task, array, work, forward, inverse, out), array.y_slabs())


def _inverse_task(array: SpectrumArray, consume: Callable, span: tuple[int, int]) -> Any:
    z0, z1 = span
    _, ny, nx = array.shape
    coeffs = np.asarray(array.open()[z0:z1])
    return consume(z0, z1, slab_fft.irfft2_slab(coeffs, ny, nx))


def inverse_slabs(runner: Runner, array: SpectrumArray, consume: Callable) -> list:
    """Inverse 2-D rfft of every z-slab of ``array`` handed to ``consume(z0, z1, slab) -> stats``."""
    return runner.map(partial(_inverse_task, array, consume), array.z_slabs())


def scratch_dir(store_path: str | Path) -> Path:
    """The directory of a run's FFT intermediates (``<store>/_fft``)."""
    return Path(store_path) / "_fft"
