# syntax=docker/dockerfile:1
# Chat service image.
#   docker build -t chat-service:dev .
#   docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm -t chat-service:dev .
# Both stages must use the same base image: the venv links to its Python interpreter.
# Any Debian-like base with `python3` (>= 3.11, with the venv module) works: the build uses only
# `python3` and the venvs' own pip, never a global `python`/`pip` (scripts/podman/ builds on a
# debootstrap base with Debian's python3 + python3-venv).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: generate the gRPC stubs from proto/ and install the package into /opt/venv ----
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src

# Code generators, pinned by the dev extra of pyproject.toml (single source of the versions);
# they live in a throwaway venv and never reach the runtime image.
# (README.md is pyproject's readme; the glob keeps the build working while it is absent.)
COPY pyproject.toml README.md* ./
RUN python3 -m venv /opt/protoc \
 && python3 -c "import tomllib; dev = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']; print('\n'.join(d for d in dev if d.split('=')[0].strip() in ('grpcio-tools', 'mypy-protobuf')))" > /tmp/protoc-requirements.txt \
 && /opt/protoc/bin/pip install -r /tmp/protoc-requirements.txt

COPY proto/ proto/
COPY service/ service/
# Same command as `make proto` (every proto/*.proto): stubs into service/chat_service/gen/.
# (PATH: protoc finds the protoc-gen-mypy* plugins there.)
RUN PATH=/opt/protoc/bin:$PATH python3 -m grpc_tools.protoc -Ichat_service/gen=proto \
        --python_out=service --grpc_python_out=service \
        --mypy_out=service --mypy_grpc_out=service proto/*.proto

# The runtime venv has no pip: the builder's pip (the /opt/protoc venv's) installs into it from
# outside (and byte-compiles everything, so the read-only runtime never needs to write .pyc files).
RUN python3 -m venv --without-pip /opt/venv \
 && /opt/protoc/bin/pip --python /opt/venv/bin/python install .

# ---- runtime: the venv only, as an unprivileged user ----
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin chat
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRPC_PORT=50051 \
    METRICS_PORT=9464
WORKDIR /tmp
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
EXPOSE 50051 9464
# `docker run IMAGE` serves; `docker run IMAGE migrate` applies the DB migrations.
ENTRYPOINT ["python", "-m", "chat_service"]
