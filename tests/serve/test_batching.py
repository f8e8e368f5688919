"""The batcher: requests that arrive while the model is busy are answered together, in order."""

from __future__ import annotations

import asyncio
import threading

import pytest

from deepframes.serve.batching import Batcher


class Gate:
    """A stand-in model whose first batch waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered, self.open, self.batches = threading.Event(), threading.Event(), []

    def __call__(self, photos, top):
        self.batches.append(list(photos))
        self.entered.set()
        self.open.wait(timeout=30)
        if b"boom" in photos:
            raise RuntimeError("the model failed")
        return [photo.decode() + f"/{top}" for photo in photos]


async def _ask(batcher: Batcher, gate: Gate, first: bytes, later: list[bytes], pixels: int = 1):
    """Send ``first``; once the model is busy with it, send ``later``; then open the gate."""
    waiting = [asyncio.ensure_future(batcher.submit(first, pixels))]
    await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 30)
    waiting += [asyncio.ensure_future(batcher.submit(photo, pixels)) for photo in later]
    await asyncio.sleep(0.1)  # let the later requests reach the queue before the gate opens
    gate.open.set()
    return await asyncio.gather(*waiting, return_exceptions=True)


def test_batcher_answers_requests_queued_while_busy_in_one_batch():
    gate = Gate()
    batcher = Batcher(gate, top=2)
    later = [f"p{index}".encode() for index in range(1, 8)]
    answers = asyncio.run(_ask(batcher, gate, b"p0", later))
    batcher.close()
    assert answers == [f"p{index}/2" for index in range(8)]
    assert [len(batch) for batch in gate.batches] == [1, 7]


def test_batcher_caps_a_batch_by_pixels():
    gate = Gate()
    batcher = Batcher(gate, max_batch_pixels=60_000_000)
    asyncio.run(_ask(batcher, gate, b"a", [b"b", b"c", b"d"], pixels=30_000_000))
    batcher.close()
    assert [len(batch) for batch in gate.batches] == [1, 2, 1]


def test_batcher_gives_a_failed_batch_its_error_and_goes_on():
    gate = Gate()
    batcher = Batcher(gate)
    answers = asyncio.run(_ask(batcher, gate, b"ok", [b"boom", b"fine"]))
    assert answers[0] == "ok/3"
    assert all(isinstance(answer, RuntimeError) for answer in answers[1:])

    async def again():
        return await batcher.submit(b"after")

    assert asyncio.run(again()) == "after/3"
    batcher.close()
