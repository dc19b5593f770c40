# The finops-operator image. Here: `scripts/build-image.sh` (podman or buildah, cached,
# prints the image name); elsewhere `docker build -t finops-operator:0.1.0 .` works too.
#
# Two stages on the same base. The builder makes the project's wheel and a virtual
# environment at /opt/venv from requirements.lock (every package pinned, with hashes,
# wheels only: nothing is compiled); the runtime stage copies only that environment. No
# compiler, pip cache, sources or tests end up in the final image, nor the development
# tools (src/finops_devtools: demo, simulator, dev cluster): the project's wheel holds
# finops_operator alone (pyproject.toml; the tools are the finops-devtools distribution),
# and only src/finops_operator is copied besides.
#
# BASE: any Debian-based Python 3.11 with `venv` and pip >= 22.3 (for `pip --python`).
# The default is upstream's python:3.11-slim-bookworm; pin it by digest in your pipeline
# (docker.io/library/python:3.11-slim-bookworm@sha256:...) for reproducible builds.
# Without a registry, scripts/build-image-base.sh makes one from Debian packages
# (bookworm's python3, 3.11.2): scripts/build-image.sh uses it when the default cannot
# be pulled.
#
# Runtime: non-root (65532), read-only root filesystem friendly. The process writes
# nothing outside /tmp, and there only when `run` gets neither --webhook-secret
# nor --webhook-cert/--webhook-key: then it writes a self-signed development
# certificate to a private temporary folder. Mount an emptyDir at /tmp
# (manifests/base/deployment.yaml does).

ARG BASE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE} AS builder

# Bytecode is compiled here (pip's default), so the read-only runtime never needs to.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build

# Given only by a build that needs them (scripts/build-image.sh passes the host's): where
# pip finds packages and which CA bundle it trusts. The runtime stage sees none of them.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_DEFAULT_TIMEOUT
ARG PIP_CERT

# Dependencies first, so that a change in src/ does not invalidate this layer.
COPY requirements.lock ./
# The environment has no pip or setuptools of its own: the base image's pip
# installs into it (--python).
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install \
        --no-deps --require-hashes --only-binary=:all: -r requirements.lock

# The project itself, as a wheel, built in a throwaway environment with the build
# backend pinned (a Debian python refuses installs into its own, PEP 668). README.md
# is only the wheel's long description: an empty one, so a docs edit rebuilds nothing.
COPY pyproject.toml ./
COPY src/finops_operator ./src/finops_operator
RUN touch README.md \
 && python -m venv /build/backend \
 && /build/backend/bin/pip install --no-deps setuptools==80.9.0 wheel==0.45.1 \
 && /build/backend/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && pip --python /opt/venv/bin/python install --no-deps /wheels/finops_operator-*.whl

FROM ${BASE} AS runtime

LABEL org.opencontainers.image.title="finops-operator" \
      org.opencontainers.image.description="Cost visibility and control for GPU and AI workloads on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

COPY --from=builder /opt/venv /opt/venv

# 65532: the conventional "nonroot" uid/gid. It has no entry in /etc/passwd, as under
# Kubernetes with runAsUser: nothing may ask for one. Python's getpass.getuser() and
# pwd.getpwuid() fail there (KeyError), so `run` names itself (kopf's identity) from
# the host name, the pod's name, and HOME is set above for ~ (kubeconfig, .netrc).
USER 65532:65532
WORKDIR /tmp

# 9443: admission over HTTPS; 8080: /metrics and /healthz.
EXPOSE 9443 8080

ENTRYPOINT ["finops-operator"]
CMD ["run"]
