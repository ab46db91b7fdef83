# The suitcase worker image: the package installed the way scripts/bootstrap.sh does
# (pip install of this project, no extras), run as a non-root user.
# Build from the repository root:  docker build -t suitcase:0.1.0 .
# Python pinned to the version scripts/bootstrap.sh asks for (python3.11) and
# pyproject.toml allows (>=3.11,<3.13).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY estimators ./estimators
RUN python -m pip install --upgrade "pip==24.3.1" \
 && python -m pip install . \
 && rm -rf /src

# Non-root: the worker needs nothing but its data directory and the network.
RUN groupadd --system --gid 10001 suitcase \
 && useradd --system --uid 10001 --gid suitcase --home-dir /var/lib/suitcase --create-home suitcase
USER 10001:10001
WORKDIR /var/lib/suitcase
VOLUME ["/var/lib/suitcase"]

# Prometheus /metrics (suitcase worker --metrics-port; the default is 9108).
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/metrics', timeout=4).status != 200)"]

ENTRYPOINT ["suitcase", "worker"]
# Overridden by Compose and Kubernetes; the broker must be given.
CMD ["--help"]
