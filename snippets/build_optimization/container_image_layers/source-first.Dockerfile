# The order that rebuilds everything: the whole context is copied before the
# install, so a one-line source edit invalidates the install layer too.
# --8<-- [start:image]
ARG BASE=python:3.12-slim-bookworm@sha256:e19940d025fc811ffa52ad36a1c4412fdc5c5587c87ea4a4ddf2c5bed66d6a20
FROM ${BASE}
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir --no-index --find-links wheels -r requirements.txt
CMD ["python", "app.py"]
# --8<-- [end:image]
