"""Concurrent requests answered in batches by a few worker threads: the web service's engine room.

Requests that arrive while the workers are busy wait in a queue; a worker that is free takes all
of them at once (up to ``max_batch`` photos, or ``max_batch_pixels`` pixels by their headers) and
runs them as one batch. Under load batches grow by themselves; alone, a photo is answered at
once, with no timer to wait for. Decoding happens in the workers, one photo after another in
each, so the memory decoding takes is needed once per worker (one per core), not once per
concurrent request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 32
# A batch stops growing past this many pixels (by the photos' headers), so that a few huge
# uploads are decoded in a batch of their own and ordinary photos are not held behind many.
DEFAULT_MAX_BATCH_PIXELS = 100_000_000
# Batches holding more pixels than this run one at a time: decoding takes up to 4 bytes per pixel,
# so two workers on two 50-megapixel photos would need 400 MB at once instead of 200 MB.
LARGE_BATCH_PIXELS = 25_000_000
_STOP = None  # put on the queue by close()


@dataclass
class _Request:
    content: bytes
    pixels: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


class Batcher:
    """Runs ``function(photos, top=...)`` (a ``PipelineFunction``) on batches of concurrent requests.

    Parameters
    ----------
    function : callable
        Encoded photos and ``top`` in, one answer per photo out, in order.
    top : int
        Classes asked of the function for every photo.
    max_batch : int
        Most photos in one batch.
    max_batch_pixels : int
        A batch takes no further photo once it holds this many pixels (a photo larger than
        this alone still makes a batch of one).
    workers : int
        Batches run at once, each in its own thread.

    Examples
    --------
    >>> import asyncio
    >>> batcher = Batcher(lambda photos, top: [len(photo) for photo in photos], top=3)
    >>> async def ask():
    ...     return await asyncio.gather(*(batcher.submit(b"x" * n, pixels=1) for n in (1, 2, 3)))
    >>> asyncio.run(ask())
    [1, 2, 3]
    >>> batcher.close()
    """

    def __init__(self, function: Callable[..., Sequence[Any]], top: int = 3, max_batch: int = DEFAULT_MAX_BATCH,
                 max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS, workers: int = 1) -> None:
        self.function = function
        self.top = top
        self.max_batch = max_batch
        self.max_batch_pixels = max_batch_pixels
        self.batch_sizes: list[int] = []  # the last batches' sizes, for tests and logs
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._held: _Request | None = None
        self._taking = threading.Lock()  # one worker at a time gathers a batch
        self._counting = threading.Lock()
        self._num_busy = 0
        self._large = threading.Lock()
        self.workers = workers
        self._threads = [threading.Thread(target=self._work, name=f"deepframes-batcher-{index}", daemon=True)
                         for index in range(workers)]
        for thread in self._threads:
            thread.start()

    async def submit(self, content: bytes, pixels: int = 0) -> Any:
        """The function's answer for one encoded photo of ``pixels`` pixels (by its header)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(content, pixels, loop, future))
        return await future

    def close(self) -> None:
        """Stop the workers once the requests already queued are answered."""
        self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=60)

    def _next_batch(self) -> list[_Request] | None:
        with self._taking:
            return self._gather()

    def _gather(self) -> list[_Request] | None:
        first = self._held if self._held is not None else self._queue.get()
        self._held = None
        if first is _STOP:
            self._queue.put(_STOP)  # for the next worker
            return None
        with self._counting:
            idle = self.workers - self._num_busy  # this worker included
            self._num_busy += 1
        # Queued photos are shared among the idle workers, so that both cores work on a burst.
        limit = min(self.max_batch, max(1, math.ceil((1 + self._queue.qsize()) / idle)))
        batch, pixels = [first], first.pixels
        while len(batch) < limit:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                break
            if request is _STOP:
                self._queue.put(_STOP)  # stop after this batch
                break
            if pixels + request.pixels > self.max_batch_pixels:
                self._held = request  # the next batch starts with it
                break
            batch.append(request)
            pixels += request.pixels
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self.batch_sizes = (self.batch_sizes + [len(batch)])[-100:]
            large = self._large if sum(request.pixels for request in batch) > LARGE_BATCH_PIXELS else nullcontext()
            try:
                with large:
                    answers = self.function([request.content for request in batch], top=self.top)
            except Exception as error:  # every waiting request gets the failure, the worker goes on
                logger.exception("a batch of %d photos failed", len(batch))
                for request in batch:
                    request.loop.call_soon_threadsafe(_settle, request.future, None, error)
            else:
                for request, answer in zip(batch, answers):
                    request.loop.call_soon_threadsafe(_settle, request.future, answer, None)
            finally:
                with self._counting:
                    self._num_busy -= 1


def _settle(future: asyncio.Future, answer: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(answer)
