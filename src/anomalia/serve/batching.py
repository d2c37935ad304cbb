"""Requests arriving together are scored together: an asyncio queue and batching workers.

Each request puts one job (its images, already decoded) on a bounded queue and awaits a future.
A worker takes the first waiting job, then more, until the batch holds ``max_batch`` images or
``batch_wait_ms`` has passed with no further job; it scores the batch in a thread, so the event
loop keeps accepting requests meanwhile, and gives every job its own slice of the scores. Jobs
that arrive while a batch is being scored wait in the queue and form the next batch, so under
load batches fill up without any waiting. A batch that fails is scored again job by job, so one
request's failure never reaches another's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from anomalia.serve.scorers import Scorer

#: (scores (k,), maps (k, H, W) or None) for one job of k images.
JobResult = tuple[np.ndarray, np.ndarray | None]


class QueueFullError(Exception):
    """More requests are waiting than the queue holds; the caller should retry later."""


@dataclass
class _Job:
    images: np.ndarray  # (k, C, S, S) uint8
    want_maps: bool
    future: asyncio.Future[JobResult] = field(repr=False)


class Batcher:
    """Batches jobs from concurrent requests and scores them with ``scorer`` in threads.

    Args:
        scorer: what scores the images.
        max_batch: images per scored batch at most (a larger job is scored in slices of it).
        n_workers: batches scored at once, each in its own thread.
        batch_wait_ms: how long a batch waits for more jobs once it has its first.
        max_queue: jobs waiting at most; :meth:`submit` raises :class:`QueueFullError` beyond.
        on_batch: called with (images, jobs) after each scored batch, for metrics.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch: int,
        n_workers: int = 1,
        batch_wait_ms: float = 2.0,
        max_queue: int = 256,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self.n_workers = n_workers
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        """Start the workers on the running event loop."""
        self._queue = asyncio.Queue(self.max_queue)
        self._executor = ThreadPoolExecutor(self.n_workers, thread_name_prefix="anomalia-score")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.n_workers)]

    async def stop(self) -> None:
        """Stop the workers; jobs still waiting fail with :class:`QueueFullError`."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(QueueFullError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, images: np.ndarray, want_maps: bool = False) -> JobResult:
        """Score ``images`` (k, C, S, S) uint8 in the next batch: (scores, maps or None)."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        job = _Job(images, want_maps, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.max_queue} requests are already waiting") from None
        return await job.future

    # ------------------------------------------------------------------------------ workers
    async def _work(self) -> None:
        assert self._queue is not None
        carried: _Job | None = None  # a job that did not fit the previous batch
        jobs: list[_Job] = []
        try:
            while True:
                jobs = [carried if carried is not None else await self._queue.get()]
                carried = None
                n_images = len(jobs[0].images)
                deadline = asyncio.get_running_loop().time() + self.batch_wait_s
                while n_images < self.max_batch:
                    job = await self._next_before(deadline)
                    if job is None:
                        break
                    if n_images + len(job.images) > self.max_batch:
                        carried = job
                        break
                    jobs.append(job)
                    n_images += len(job.images)
                await self._score_jobs([j for j in jobs if not j.future.done()])
        except asyncio.CancelledError:  # stopped: no job it holds may wait for ever
            for job in [*jobs, *([carried] if carried is not None else [])]:
                _settle(job, error=QueueFullError("the service is shutting down"))
            raise

    async def _next_before(self, deadline: float) -> _Job | None:
        """The next job, or None when none arrives before ``deadline`` (event-loop time)."""
        assert self._queue is not None
        with contextlib.suppress(asyncio.QueueEmpty):
            return self._queue.get_nowait()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({getter}, timeout=remaining)
        if not done:
            getter.cancel()
            await asyncio.wait({getter})  # it may have got a job just as it was cancelled
            if getter.cancelled():
                return None
        return getter.result()

    async def _score_jobs(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._score, jobs)
        except Exception as err:
            if len(jobs) == 1:
                _settle(jobs[0], error=err)
                return
            # Score job by job, so only the job that fails gets the error.
            for job in jobs:
                try:
                    (result,) = await loop.run_in_executor(self._executor, self._score, [job])
                except Exception as job_err:
                    _settle(job, error=job_err)
                else:
                    _settle(job, result=result)
            return
        for job, result in zip(jobs, results, strict=True):
            _settle(job, result=result)

    def _score(self, jobs: list[_Job]) -> list[JobResult]:
        """Runs in a worker thread: one batch of jobs -> each job's (scores, maps)."""
        images = np.concatenate([job.images for job in jobs])  # (N, C, S, S)
        scores = self._in_slices(self.scorer.score, images)
        mapped = [job for job in jobs if job.want_maps]
        maps = (
            self._in_slices(self.scorer.anomaly_maps, np.concatenate([j.images for j in mapped]))
            if mapped
            else None
        )
        if self.on_batch is not None:
            self.on_batch(len(images), len(jobs))
        results: list[JobResult] = []
        start = map_start = 0
        for job in jobs:
            k = len(job.images)
            job_maps = None
            if job.want_maps and maps is not None:
                job_maps = maps[map_start : map_start + k]
                map_start += k
            results.append((scores[start : start + k], job_maps))
            start += k
        return results

    def _in_slices(self, fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
        parts = [fn(images[i : i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return np.concatenate(parts)


def _settle(
    job: _Job, *, result: JobResult | None = None, error: BaseException | None = None
) -> None:
    """Give a job its result or error, unless its request has gone (future cancelled)."""
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        assert result is not None
        job.future.set_result(result)
