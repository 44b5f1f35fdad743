# ForestGate serving image.
#
#   docker build -t forestgate .                                  # the demo bundles, trained here
#   docker build --build-arg MODEL_REPOSITORY=path/in/context -t forestgate .
#   docker build --build-arg MODEL_REPOSITORY=none -t forestgate .  # mount one on /models instead
#   docker run --rm -p 50051:50051 -p 9090:9090 forestgate
#
# Two stages. The builder has gcc and the training stack: it installs the project, then trains
# and compiles the demo bundles (or checks the repository it was given). The runtime stage
# copies only a virtual environment with the serving dependencies (no treelite, no SciPy, no
# training framework) and the bundles, whose shared libraries need nothing beyond libc.
# `make docker-smoke` builds and runs this file on a local Debian base (docs/deploy.md).

# The official image of the Python the project is tested on; both stages use the same base, so
# the virtual environment's interpreter path is the same in each.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libgomp1 \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# One COPY of the filtered context (.dockerignore): each layer is a copy of the whole tree under
# some storage drivers (vfs), so the builder keeps its layers few.
COPY . /src
# Empty: train the demo bundles (the small generator preset, about a minute on 2 cores).
# A path: a model repository (<name>/<version>/manifest.json) in the build context, whose
# bundles must load and pass their self-check here. "none": an empty /models, for a volume.
ARG MODEL_REPOSITORY=
# /opt/build trains and compiles; /opt/forestgate, the core install, is what the runtime takes.
RUN set -eu; cd /src; \
    python3 -m venv /opt/build; /opt/build/bin/pip install --quiet '.[train]'; \
    python3 -m venv /opt/forestgate; /opt/forestgate/bin/pip install --quiet .; \
    /opt/forestgate/bin/pip uninstall --quiet --yes pip; \
    case "$MODEL_REPOSITORY" in \
      "") /opt/build/bin/forestgate train --data /tmp/data --repository /models \
            --report /tmp/reports --config demo --preset small --run demo ;; \
      none) mkdir /models ;; \
      *) cp -r "/src/$MODEL_REPOSITORY" /models ;; \
    esac; \
    bundles=0; \
    for manifest in $(find /models -mindepth 3 -maxdepth 3 -name manifest.json); do \
      /opt/forestgate/bin/forestgate inspect "$(dirname "$manifest")" > /tmp/inspect.txt; \
      tail -n 1 /tmp/inspect.txt; bundles=$((bundles + 1)); \
    done; \
    if [ "$bundles" = 0 ] && [ "$MODEL_REPOSITORY" != none ]; then \
      echo "error: no bundle (<name>/<version>/manifest.json) under MODEL_REPOSITORY=$MODEL_REPOSITORY" >&2; \
      exit 1; \
    fi

FROM ${BASE_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin forestgate
COPY --from=builder /opt/forestgate /opt/forestgate
# Owned by root and read-only to the server's user: a running server never writes a bundle.
COPY --from=builder /models /models
# Every setting is also a FORESTGATE_* variable (a flag wins), so a ConfigMap or `docker run
# -e` changes any of them; `forestgate health` reads FORESTGATE_PORT too.
ENV PATH=/opt/forestgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FORESTGATE_MODEL_REPOSITORY=/models \
    FORESTGATE_HOST=0.0.0.0 \
    FORESTGATE_PORT=50051 \
    FORESTGATE_METRICS_PORT=9090
USER 10001:10001
# gRPC (Open Inference Protocol, Score, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["forestgate", "health"]
# The server is PID 1 (exec form, no shell): SIGTERM reaches it and drains, as outside Docker.
STOPSIGNAL SIGTERM
ENTRYPOINT ["forestgate"]
CMD ["serve"]
