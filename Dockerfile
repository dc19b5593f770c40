# The finops-operator image: `docker build -t finops-operator:0.1.0 .`
#
# Two stages on the same pinned base. The builder makes the project's wheel and a
# virtual environment at /opt/venv from requirements.lock (every package pinned,
# with hashes, wheels only: nothing is compiled); the runtime stage copies only that
# environment. No compiler, pip cache, sources or tests end up in the final image.
# Pin the base by digest in your pipeline (python:3.11.11-slim-bookworm@sha256:...)
# for fully reproducible builds.
#
# Runtime: non-root (65532), read-only root filesystem friendly. The process writes
# nothing outside /tmp, and there only when `run` gets neither --webhook-secret
# nor --webhook-cert/--webhook-key: then it writes a self-signed development
# certificate to a private temporary folder. Mount an emptyDir at /tmp
# (manifests/base/deployment.yaml does).

FROM python:3.11.11-slim-bookworm AS builder

# Bytecode is compiled here (pip's default), so the read-only runtime never needs to.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build

# Dependencies first, so that a change in src/ does not invalidate this layer.
COPY requirements.lock ./
# The environment has no pip or setuptools of its own: the base image's pip
# installs into it (--python).
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install \
        --no-deps --require-hashes --only-binary=:all: -r requirements.lock

# The project itself, as a wheel, with the build backend pinned.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps setuptools==80.9.0 wheel==0.45.1 \
 && pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && pip --python /opt/venv/bin/python install --no-deps /wheels/finops_operator-*.whl

FROM python:3.11.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="finops-operator" \
      org.opencontainers.image.description="Cost visibility and control for GPU and AI workloads on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

COPY --from=builder /opt/venv /opt/venv

# 65532: the conventional "nonroot" uid/gid; no entry in /etc/passwd is needed.
USER 65532:65532
WORKDIR /tmp

# 9443: admission over HTTPS; 8080: /metrics and /healthz.
EXPOSE 9443 8080

ENTRYPOINT ["finops-operator"]
CMD ["run"]
