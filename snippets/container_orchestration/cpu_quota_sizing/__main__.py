"""Size two pools for this machine and log why: ``python -m ...cpu_quota_sizing``."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from snippets.container_orchestration.cpu_quota_sizing import cpu_budget, pool_sizes

log = logging.getLogger(__name__)


# --8<-- [start:main]
def main() -> None:
    """Size the pools once, at start-up, and log every input of the decision."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    budget = cpu_budget()
    log.info(budget.describe())
    processes, threads = pool_sizes(budget)
    with (
        ProcessPoolExecutor(max_workers=processes) as cpu_pool,
        ThreadPoolExecutor(max_workers=threads) as io_pool,
    ):
        log.info("pools: %d processes, %d threads", processes, threads)
        cpu_pool.submit(sum, range(10)).result(timeout=30)
        io_pool.submit(sum, range(10)).result(timeout=30)


if __name__ == "__main__":
    main()
# --8<-- [end:main]
