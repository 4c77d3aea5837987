"""Running many small tasks with a bounded number in flight (Dask ``client`` or this process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

#: Tasks kept in flight per worker thread (enough to hide scheduling latency).
IN_FLIGHT_PER_THREAD = 3
#: Least number of tasks in flight.
MIN_IN_FLIGHT = 4


def in_flight_limit(client: Any) -> int:
    """How many tasks to keep submitted: a few per worker thread of ``client``."""
    try:
        threads = sum(client.nthreads().values())
    except Exception:  # noqa: BLE001 - a client without workers yet
        threads = 0
    return max(MIN_IN_FLIGHT, IN_FLIGHT_PER_THREAD * threads)


def run_bounded(client: Any, fn: Callable[..., Any], calls: Iterable[tuple], on_result: Callable[[Any], None],
                *, limit: int | None = None, on_error: Callable[[tuple, BaseException], Any] | None = None) -> None:
    """Run ``fn(*args)`` for every ``args`` of ``calls``, calling ``on_result`` with each result.

    With a Dask ``client`` at most ``limit`` tasks (default :func:`in_flight_limit`)
    are submitted at a time: the next is submitted as one finishes, and each
    finished future is released at once, so neither the client nor the
    scheduler holds more than ``limit`` tasks, whatever the number of calls.
    Without a client the calls run here, in order.  A task that fails (after Dask's own
    retries, e.g. ``KilledWorker`` when it kills every worker it runs on) raises, unless
    ``on_error(args, exception)`` is given: its return value is then taken as the task's result.
    """
    if client is None:
        for args in calls:
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - handed to on_error
                if on_error is None:
                    raise
                result = on_error(args, exc)
            on_result(result)
        return
    from distributed import as_completed

    limit = limit or in_flight_limit(client)
    pending = iter(calls)
    running = as_completed()
    outstanding = set()

    arguments: dict[Any, tuple] = {}

    def submit(args: tuple) -> None:
        future = client.submit(fn, *args, pure=False)
        outstanding.add(future)
        arguments[future.key] = args
        running.add(future)

    for args in islice(pending, limit):
        submit(args)
    try:
        for future in running:
            args = arguments.pop(future.key)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - handed to on_error
                if on_error is None:
                    raise
                result = on_error(args, exc)
            outstanding.discard(future)
            future.release()
            on_result(result)
            following = next(pending, None)
            if following is not None:
                submit(following)
    finally:
        if outstanding:
            client.cancel(list(outstanding))
