# journeyflow live worker: `journeyflow run`, Kafka in and out, Redis profiles.
#
#   docker build -t journeyflow .
#   docker run --rm -v jf-state:/var/lib/journeyflow \
#     -e JOURNEYFLOW_KAFKA_BROKERS=kafka:9092 -e JOURNEYFLOW_REDIS_URL=redis://redis:6379/0 \
#     journeyflow
#
# Settings come from the environment (JOURNEYFLOW_<SECTION>_<KEY>) or a file
# mounted and passed with --config. See the README's "Running the live worker".

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY journeyflow ./journeyflow
COPY flows ./flows
COPY operators ./operators
COPY state ./state
COPY config ./config
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/journeyflow journeyflow
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    JOURNEYFLOW_RECOVERY_DIR=/var/lib/journeyflow/recovery \
    JOURNEYFLOW_RUN_METRICS_PORT=9100
# Recovery snapshots (state and Kafka offsets) live here: keep it on a volume,
# one per process, so a restarted worker resumes where it stopped.
VOLUME ["/var/lib/journeyflow"]
USER journeyflow
WORKDIR /var/lib/journeyflow
EXPOSE 9100
# Ready once the worker has checked Kafka, Redis and its recovery store and is running.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import sys, urllib.request; body = urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=2).read(); sys.exit(0 if b'journeyflow_ready 1.0' in body else 1)"
ENTRYPOINT ["journeyflow", "run"]
