# Hotline image for the distributed deployment (docker-compose.yml): faust workers, the alert
# sink, the dashboard and the replay publisher all run this image with different commands.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    XDG_STATE_HOME=/var/lib/hotline
WORKDIR /opt/hotline
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
RUN pip install --upgrade pip && pip install . \
    && useradd --system --home /var/lib/hotline --create-home hotline
USER hotline
ENV HOTLINE_SOURCE_ARCHIVE=/opt/hotline/data/archive
CMD ["hotline", "--help"]
