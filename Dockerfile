FROM python:3.12-slim
ENV UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home \
    TVQUANT_LAKE=/data/lake
RUN pip install --no-cache-dir uv
WORKDIR /opt/tvquant
COPY pyproject.toml uv.lock .python-version README.md ./
RUN uv sync --frozen --no-dev --no-install-project --compile-bytecode
COPY tvquant_assets ./tvquant_assets
COPY manifests ./manifests
COPY workspace.yaml ./
COPY deploy ./deploy
# The commit the image is built from, for the ledger's provenance (docker compose build passes it).
ARG GIT_SHA=""
ENV TVQUANT_GIT_SHA=$GIT_SHA
RUN uv sync --frozen --no-dev --compile-bytecode && mkdir -p $DAGSTER_HOME /data/lake
COPY deploy/compose/dagster.yaml $DAGSTER_HOME/dagster.yaml
# Run as an unprivileged user (the compose daemon overrides this to reach the Docker socket).
RUN useradd --create-home --uid 10001 tvquant && chown -R tvquant $DAGSTER_HOME /data/lake
USER tvquant
ENV PATH=/opt/tvquant/.venv/bin:$PATH
