# The demo service of the graceful-shutdown page. The tests lint this file and
# run its ENTRYPOINT and CMD as PID 1 of a new PID namespace.
FROM python:3.12-slim

WORKDIR /app
COPY snippets/ ./snippets/
USER 10001

# --8<-- [start:entrypoint]
# docker stop and the kubelet send this signal first; SIGTERM is also the default.
STOPSIGNAL SIGTERM
# Exec form (a JSON array): python itself is PID 1 and receives the signal.
# The shell form `ENTRYPOINT python -m ...` would run /bin/sh -c as PID 1,
# and sh neither handles SIGTERM nor passes it on.
ENTRYPOINT ["python", "-m", "snippets.container_orchestration.graceful_shutdown"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
# --8<-- [end:entrypoint]
