# Hotline serving image for the distributed deployment (docker-compose.yml): faust workers,
# the alert sink, the dashboard and the replay publisher run this image with different
# commands. Serving needs no torch, hls4ml or Pythia: the image installs the wheel with the
# kafka, dashboard and postgres extras only (scoring is onnxruntime, in the base install).

FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hotline ./hotline
COPY stream ./stream
COPY detectors ./detectors
COPY models ./models
COPY training ./training
COPY alerts ./alerts
COPY dashboard ./dashboard
COPY firmware ./firmware
COPY data ./data
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    XDG_STATE_HOME=/var/lib/hotline
COPY --from=wheel /dist /dist
RUN pip install --upgrade pip \
    && pip install "$(ls /dist/hotline-*.whl)[kafka,dashboard,postgres]" \
    && rm -rf /dist \
    && useradd --system --home /var/lib/hotline --create-home hotline
USER hotline
CMD ["hotline", "--help"]
