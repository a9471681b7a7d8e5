# The demo service of the graceful-shutdown page. The tests lint this file, run
# its ENTRYPOINT and CMD as PID 1 of a new PID namespace, and build and run it
# with Docker on a local base image.

# --8<-- [start:image]
# Pin the base image by digest, and pin the digest of the image you built and
# tested: a tag such as 3.12-slim-bookworm moves with every rebuild upstream.
# The digest below only shows the format; look yours up with
#   docker buildx imagetools inspect python:3.12-slim-bookworm
# `--build-arg BASE=...` swaps the base (the tests build on a local image).
ARG BASE=python:3.12-slim-bookworm@sha256:e19940d025fc811ffa52ad36a1c4412fdc5c5587c87ea4a4ddf2c5bed66d6a20
FROM ${BASE}

# Unbuffered: a log line reaches the runtime when it is written, not when a
# buffer fills, so the last lines before SIGKILL are not lost.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# An init as PID 1: tini forwards SIGTERM to Python and reaps any child
# process that exits (Python as PID 1 reaps none it did not wait for).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies before the source: this layer is rebuilt only when they change.
COPY snippets/container_orchestration/manifests/requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY snippets/ ./snippets/
USER 10001
# --8<-- [end:image]

# --8<-- [start:entrypoint]
# docker stop and the kubelet send this signal first; SIGTERM is also the default.
STOPSIGNAL SIGTERM
# Exec form (a JSON array): no shell sits in front. The shell form
# `ENTRYPOINT python -m ...` runs /bin/sh -c, and a shell that stays PID 1
# (dash does; bash and BusyBox exec a single command) neither handles SIGTERM
# nor passes it on. tini is PID 1 and forwards the signal to Python.
ENTRYPOINT ["tini", "--", "python", "-m", "snippets.container_orchestration.graceful_shutdown"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
# --8<-- [end:entrypoint]
