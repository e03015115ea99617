# Sealgate's GitHub Action image (and the image the GitLab template runs).
#
# Two stages: the first builds a virtual environment, the second copies only that
# onto a clean base, so no pip cache, build tools or sources remain in the final
# image. Both stages use the same BASE, so the venv's interpreter path matches.
#
# The base is pinned by digest: we practise what we preach. The digest below is
# python:3.11-slim's index as published on Docker Hub (multi-arch); it was taken
# from public pins of that image and could not be re-resolved from this build
# machine. Refresh it with Dependabot (package-ecosystem: docker) or
#   docker buildx imagetools inspect python:3.11-slim
# Tests build offline with --build-arg BASE=<a local debootstrap image> and
# --build-arg WHEELS=dist/wheels (wheels made on the host with `pip wheel . -w dist/wheels`).
ARG BASE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${BASE} AS build
# Labels let a local rebuild clean up the images it leaves behind (tests/integration/action_image.py).
LABEL dev.sealgate.stage=build
# Empty: install sealgate and its dependencies from the package index (the public path).
# A directory in the build context: install every wheel in it, offline (tests).
ARG WHEELS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY . /src
# The action's entrypoint is not part of the wheel: it is copied beside the venv.
# pip and setuptools are removed afterwards: not needed at run time, fewer things to patch.
RUN set -eu; \
    python3 -m venv /opt/sealgate; \
    if [ -n "$WHEELS" ]; then \
      /opt/sealgate/bin/pip install --no-index --find-links "/src/$WHEELS" "/src/$WHEELS"/*.whl; \
    else \
      /opt/sealgate/bin/pip install /src; \
    fi; \
    mkdir -p /opt/sealgate/app; \
    cp -r /src/action /opt/sealgate/app/action; \
    find /opt/sealgate -name '__pycache__' -path '*/app/*' -prune -exec rm -rf {} +; \
    /opt/sealgate/bin/python -m pip uninstall -q -y pip setuptools; \
    PYTHONPATH=/opt/sealgate/app /opt/sealgate/bin/python -P -c "import gate.cli, action._run"

FROM ${BASE}
LABEL org.opencontainers.image.title="sealgate" \
      org.opencontainers.image.description="Sign and gate container images (cosign-compatible)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      dev.sealgate.stage=action
COPY --from=build /opt/sealgate /opt/sealgate
# -P (PYTHONSAFEPATH) keeps the working directory off sys.path: GitHub runs the
# action in the checked-out workspace, whose files must never be imported.
ENV PATH=/opt/sealgate/bin:$PATH \
    PYTHONPATH=/opt/sealgate/app \
    PYTHONSAFEPATH=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# No USER: GitHub runs container actions as root and mounts the workspace and the
# file-command files owned by the runner's user, which a non-root user in the
# container could not write (github/docs dockerfile-support.md). For other uses
# (e.g. `sealgate watch`) run with `--user 65532:65532`; nothing here needs root.
# GitHub sets the working directory to the workspace, so none is set here.
ENTRYPOINT ["/opt/sealgate/bin/python", "-P", "-m", "action"]
