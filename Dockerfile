# syntax=docker/dockerfile:1
# The one image of the project: it runs the operator (default command) and the
# notification sidecar (command: emailsettings-sidecar), and the chart's helm test.
#
#   docker build -t emailsettings-operator:dev .
#   docker run --rm emailsettings-operator:dev emailsettings-operator --help
#   docker run --rm emailsettings-operator:dev emailsettings-sidecar --help
#
# Both stages use the same base so the virtualenv's interpreter links stay valid.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: resolve the locked dependencies and the project into one virtualenv ----
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/emailsettings
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first, from the lock file only, so code changes reuse this layer.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-default-groups --no-install-project --no-editable
COPY operator/ operator/
# The project as a wheel (no editable link back to /src), without test or lint groups
# and without the devstack extra.
RUN uv sync --locked --no-default-groups --no-editable

# ---- runtime: the base image, the virtualenv, a numeric non-root user; no uv, no pip use ----
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="emailsettings-operator" \
      org.opencontainers.image.description="EmailSettings operator and notification sidecar" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 65532 emailsettings \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin emailsettings \
    && install -d -o 65532 -g 65532 -m 0750 /var/spool/emailsettings
COPY --from=build /opt/emailsettings /opt/emailsettings
# HOME=/tmp: the root filesystem is read-only in the chart; /tmp is an emptyDir there.
ENV PATH=/opt/emailsettings/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
CMD ["emailsettings-operator"]
