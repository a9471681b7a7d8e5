"""The cases the page shows: real Celery workers on a real RabbitMQ.

    python -m snippets.container_orchestration.celery_workers_on_kubernetes.demo CASE

Workers come from the Celery page's harness (snippets/support/message_queues_celery.py)
and import ``worker.py``, which adds the liveness steps. The kubelet's part is
played by `delete_pod` (SIGTERM, wait out the grace period, SIGKILL) and by
running the probe commands a manifest would run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from snippets.container_orchestration.celery_workers_on_kubernetes.check import (
    file_is_fresh,
)
from snippets.support.cases import run_cases
from snippets.support.container_orchestration_proxy import BlackHoleProxy
from snippets.support.message_queues_celery import (
    TIMEOUT,
    Lab,
    Worker,
    consumer_count,
    rabbitmq_lab,
    ready_count,
    wait_until,
)

__all__: list[str] = []

CHECK = Path(__file__).with_name("check.py")
WORKER_MODULE = "snippets.container_orchestration.celery_workers_on_kubernetes.worker"
MAX_AGE = 3.0  # the probe's threshold; the file is touched every 0.5 s
GRACE = 2.0  # terminationGracePeriodSeconds, scaled down for the cases


def liveness_conf(folder: Path, name: str) -> dict[str, Any]:
    """Settings for a worker that keeps ``<name>.alive`` (and ``<name>.loop``)."""
    return {
        "imports": [WORKER_MODULE],
        "liveness_file": str(folder / f"{name}.alive"),
        "loop_liveness_file": str(folder / f"{name}.loop"),
        "liveness_interval": 0.5,
    }


# --8<-- [start:probes]
def file_probe(path: Path) -> bool:
    """The exec probe the manifest runs: ``python check.py PATH MAX_AGE``."""
    args = [sys.executable, str(CHECK), str(path), str(MAX_AGE)]
    return subprocess.run(args, capture_output=True, timeout=30).returncode == 0


def ping_probes(broker: str, nodes: list[str]) -> list[bool]:
    """``celery inspect ping -d NODE`` per node, in parallel, as each Pod would.

    Each is a new Python process that imports Celery, connects to the broker,
    broadcasts a ping and waits up to 1 s for the reply. A probe still
    running after 10 s counts as failed, as the kubelet's timeoutSeconds would.
    """
    base = [sys.executable, "-m", "celery", "-b", broker, "inspect", "ping"]
    procs = [
        subprocess.Popen(
            [*base, "-d", node, "-t", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for node in nodes
    ]
    results = []
    for proc in procs:
        try:
            results.append(proc.wait(timeout=10) == 0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            results.append(False)
    return results


# --8<-- [end:probes]


def proxied(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    split = urllib.parse.urlsplit(url)
    auth = split.netloc.rpartition("@")[0]
    netloc = f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    return urllib.parse.urlunsplit(split._replace(netloc=netloc))


def upstream(url: str) -> tuple[str, int]:
    split = urllib.parse.urlsplit(url)
    return split.hostname or "127.0.0.1", split.port or 5672


def passed(results: list[bool]) -> str:
    return f"{sum(results)} of {len(results)} pass"


# --8<-- [start:outage]
def probe_outcomes(lab: Lab, folder: Path) -> dict[str, tuple[str, str]]:
    """Two workers behind one proxy to the broker; both probes in three states.

    Returns, per state, how many file probes and how many ping probes pass.
    The broker outage is the proxy closing: the workers' connections drop and
    new ones are refused, while RabbitMQ itself keeps running for everyone else.
    """
    queue = lab.queue("tasks")
    # Node names of one's own: a ping goes to every worker on the broker.
    names = [f"{lab.journal.prefix}-{name}" for name in ("a", "b")]
    files = [folder / f"{name}.alive" for name in names]
    with BlackHoleProxy(upstream(lab.broker)) as proxy, ExitStack() as stack:
        broker = proxied(lab.broker, proxy.port)
        conf = {"broker_url": broker, "worker_enable_remote_control": True}
        workers: list[Worker] = [
            stack.enter_context(
                lab.worker(
                    {**conf, **liveness_conf(folder, name)}, name, queue, pool="prefork"
                )
            )
            for name in names
        ]
        nodes = [f"{name}@cp" for name in names]

        def both() -> tuple[str, str]:
            return passed([file_probe(f) for f in files]), passed(
                ping_probes(broker, nodes)
            )

        outcomes = {"all healthy": both()}
        os.kill(workers[0].proc.pid, signal.SIGSTOP)  # a hung main process
        wait_until(lambda: not file_is_fresh(files[0], MAX_AGE), TIMEOUT, "stale")
        outcomes["a stopped (SIGSTOP)"] = both()
        os.kill(workers[0].proc.pid, signal.SIGCONT)
        wait_until(lambda: file_is_fresh(files[0], MAX_AGE), TIMEOUT, "fresh")
        proxy.close()  # the broker is unreachable, for these two workers only
        loops = [folder / f"{name}.loop" for name in names]
        # Wait until MAX_AGE has passed since both event loops stopped.
        wait_until(
            lambda: not any(file_is_fresh(p, MAX_AGE) for p in loops), TIMEOUT, "stale"
        )
        outcomes["broker unreachable"] = both()
        running = sum(worker.proc.poll() is None for worker in workers)
        outcomes["event-loop file"] = (
            passed([file_probe(loop) for loop in loops]),
            f"{running} of 2 running",
        )
    return outcomes


# --8<-- [end:outage]


def show_probes() -> list[str]:
    with rabbitmq_lab() as lab, tempfile.TemporaryDirectory() as tmp:
        outcomes = probe_outcomes(lab, Path(tmp))
    loop, running = outcomes.pop("event-loop file")
    lines = [
        f"{state + ':':21} file probe {files}, inspect ping {ping}"
        for state, (files, ping) in outcomes.items()
    ]
    lines.append(f"{'':21} event-loop file {loop}, worker processes {running}")
    return lines


# --8<-- [start:delete-pod]
def delete_pod(worker: Worker, grace: float, *, then: int | None = None) -> str:
    """What the kubelet does to a deleted Pod's container, for one worker.

    SIGTERM, optionally a second signal ``then``, wait up to ``grace`` seconds
    (terminationGracePeriodSeconds) for the process to exit, then SIGKILL it
    and its pool processes.
    """
    worker.proc.send_signal(signal.SIGTERM)
    if then is not None:
        wait_until(lambda: "Warm shutdown" in worker.log(), TIMEOUT, "warm")
        worker.proc.send_signal(then)
    try:
        return f"exited with code {worker.proc.wait(timeout=grace)}"
    except subprocess.TimeoutExpired:
        worker.kill()
        return "SIGKILL after the grace period"


# --8<-- [end:delete-pod]


@contextmanager
def busy_worker(
    lab: Lab, conf: dict[str, Any], folder: Path, **kw: Any
) -> Iterator[tuple[Worker, str, str]]:
    """A prefork worker running t1, which waits on a gate; yields the gate too."""
    queue, log, gate = lab.queue("tasks"), lab.journal.key("log"), lab.journal.key("g")
    conf = {**conf, **liveness_conf(folder, "a"), "worker_prefetch_multiplier": 1}
    with lab.worker(conf, "a", queue, pool="prefork", **kw) as worker:
        lab.send(conf, "step", queue, lab.journal.url, log, "t1", gate, 60)
        lab.wait_for(log, "start t1 a")
        yield worker, log, gate


def t1_runs(lab: Lab, log: str) -> str:
    lines = lab.lines(log)
    started = sum(line.startswith("start t1") for line in lines)
    finished = sum(line.startswith("end t1") for line in lines)
    return f"t1 started {started}x, finished {finished}x"


# --8<-- [start:drain]
def warm_shutdown(lab: Lab, folder: Path) -> list[str]:
    """SIGTERM twice while t1 runs; the worker waits for t1, then exits 0."""
    with busy_worker(lab, {}, folder) as (worker, log, gate):
        worker.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: worker.log().count("Warm shutdown") == 1, TIMEOUT, "1st")
        worker.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: worker.log().count("Warm shutdown") == 2, TIMEOUT, "2nd")
        running = worker.proc.poll() is None
        alive = file_probe(folder / "a.alive")
        lines = [
            f"after two SIGTERMs: worker running: {'yes' if running else 'no'}, "
            f"liveness probe: {'pass' if alive else 'fail'}, {t1_runs(lab, log)}",
        ]
        lab.open_gate(gate)  # t1 finishes inside the grace period
        outcome = delete_pod(worker, TIMEOUT)  # a third SIGTERM, also ignored
        lines.append(f"t1 done: worker {outcome}, {t1_runs(lab, log)}")
    return lines


# --8<-- [end:drain]


SHUTDOWNS = ("Warm shutdown", "Cold shutdown", "Soft Shutdown")


# --8<-- [start:cutoff]
def cut_off(
    lab: Lab,
    conf: dict[str, Any],
    folder: Path,
    *,
    grace: float = GRACE,
    then: int | None = None,
    **kw: Any,
) -> str:
    """Delete the Pod while t1 runs past the grace period; is t1 still queued?"""
    queue = lab.queue("tasks")
    with busy_worker(lab, conf, folder, **kw) as (worker, log, _):
        outcome = delete_pod(worker, grace, then=then)
        said = [kind for kind in SHUTDOWNS if kind in worker.log()]
    wait_until(lambda: consumer_count(lab.broker, queue) == 0, TIMEOUT, "no consumer")
    left = ready_count(lab.broker, queue)
    verdict = "redelivered to the next worker" if left else "lost"
    return (
        f"logged: {', '.join(said)}; {outcome}; {t1_runs(lab, log)}; "
        f"left in the queue: {left} -> {verdict}"
    )


# --8<-- [end:cutoff]


def show_drain() -> list[str]:
    with rabbitmq_lab() as lab, tempfile.TemporaryDirectory() as tmp:
        return warm_shutdown(lab, Path(tmp))


SOFT = {"task_acks_late": True, "worker_soft_shutdown_timeout": 1.0}
CUTOFF_RUNS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("task_acks_late=False (default)", {}, {}),
    ("task_acks_late=True", {"task_acks_late": True}, {}),
    ("task_acks_late=True, SIGTERM then SIGQUIT", {"task_acks_late": True},
     {"then": signal.SIGQUIT, "grace": TIMEOUT}),
    ("task_acks_late=True, REMAP_SIGTERM=SIGQUIT, soft shutdown 1 s", SOFT,
     {"env": {"REMAP_SIGTERM": "SIGQUIT"}, "grace": TIMEOUT}),
]  # fmt: skip


def show_cutoff() -> list[str]:
    lines = []
    for label, conf, kw in CUTOFF_RUNS:
        with rabbitmq_lab() as lab, tempfile.TemporaryDirectory() as tmp:
            lines += [f"{label}:", f"  {cut_off(lab, conf, Path(tmp), **kw)}"]
    return lines


if __name__ == "__main__":
    sys.exit(
        run_cases({"probes": show_probes, "drain": show_drain, "cutoff": show_cutoff})
    )
