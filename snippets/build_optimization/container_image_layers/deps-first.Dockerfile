# The order that reuses the install: the lock file (and here the wheel folder
# that stands in for the package index) first, the install, then the source.
# --8<-- [start:image]
ARG BASE=python:3.12-slim-bookworm@sha256:e19940d025fc811ffa52ad36a1c4412fdc5c5587c87ea4a4ddf2c5bed66d6a20
FROM ${BASE}
WORKDIR /app
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN pip install --no-cache-dir --no-index --find-links wheels -r requirements.txt
COPY app.py ./
CMD ["python", "app.py"]
# --8<-- [end:image]
