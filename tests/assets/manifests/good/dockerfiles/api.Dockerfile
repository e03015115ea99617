ARG PYTHON=3.12
ARG REGISTRY
FROM python:${PYTHON}-slim@sha256:5b1a5f0e2e2c6e8e3f8a0c1d4b7e9f2a6c3d8e1b4f7a0c9d2e5b8f1a4c7d0e3b
RUN pip install --no-cache-dir uvicorn
FROM ${REGISTRY}/api-base:1.0
