# syntax=docker/dockerfile:1
# Techbridge catalog: `docker build -f deploy/docker/catalog.Dockerfile -t techbridge/catalog .`
# from the repository root. Only this service's own dependencies are installed (uv sync
# --package reads them from uv.lock); its migrations/ directory ships beside the package,
# where the service looks for it, and /app/migrate.py applies them as a one-shot step;
# /app/dlq_replay.py sends dead-lettered records back to their topic (deploy/README.md).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Dependencies first (the workspace needs every member's pyproject.toml to read the lock),
# so a source change does not reinstall them.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/matching/pyproject.toml services/matching/
COPY services/valuation/pyproject.toml services/valuation/
COPY services/vouchers/pyproject.toml services/vouchers/
COPY gateway/pyproject.toml gateway/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package techbridge-catalog --no-install-workspace
COPY shared/ shared/
COPY services/catalog/ services/catalog/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package techbridge-catalog \
 && python -m compileall -q shared/techbridge_shared services/catalog/techbridge_catalog services/catalog/migrations

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 techbridge \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin techbridge
WORKDIR /app
# Owned by root and read-only to the service user; it writes only to /tmp.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/shared /app/shared
COPY --from=builder /app/services/catalog /app/services/catalog
COPY deploy/docker/migrate.py deploy/docker/dlq_replay.py /app/
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    TECHBRIDGE_SERVICE=catalog \
    CATALOG_HOST=0.0.0.0 CATALOG_PORT=8101 CATALOG_DATA_DIR=/tmp/techbridge
USER 10001:10001
EXPOSE 8101
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8101/health/ready', timeout=4)"]
CMD ["python", "-m", "techbridge_catalog"]
