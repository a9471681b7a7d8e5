"""Parallel batch jobs: split a job, fan it out to workers, aggregate the results.

* `splitter_aggregator`: numbered chunks, a process pool, and an aggregator
  that orders, dedupes and refuses to finish with a chunk missing.
* `bounded_fan_out`: many parts fetched with at most N requests in flight.
* `chunksize`: how many items each task to a worker process carries.
* `batching`: ``itertools.batched`` where it exists, its recipe on 3.11.
* `lazy_map`: an ordered ``Executor.map`` that reads its input as it goes.
"""

from snippets.code_splitting.parallel_batch_jobs.batching import (
    batched_recipe,
    batches,
)
from snippets.code_splitting.parallel_batch_jobs.bounded_fan_out import (
    load_all,
    load_all_threaded,
)
from snippets.code_splitting.parallel_batch_jobs.chunksize import (
    makespan,
    map_in_chunks,
    pick_chunksize,
    pool_map_chunksize,
)
from snippets.code_splitting.parallel_batch_jobs.lazy_map import map_bounded
from snippets.code_splitting.parallel_batch_jobs.splitter_aggregator import (
    Aggregator,
    Chunk,
    IncompleteJob,
    Part,
    run_job,
    safe_context,
    split,
    stop_workers,
    transform,
)

__all__ = [
    "Aggregator",
    "Chunk",
    "IncompleteJob",
    "Part",
    "batched_recipe",
    "batches",
    "load_all",
    "load_all_threaded",
    "makespan",
    "map_bounded",
    "map_in_chunks",
    "pick_chunksize",
    "pool_map_chunksize",
    "run_job",
    "safe_context",
    "split",
    "stop_workers",
    "transform",
]
