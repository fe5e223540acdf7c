# The churnwatch worker image (Kafka is a separate service: see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY deploy ./deploy
RUN pip install --no-cache-dir . && useradd --create-home churnwatch
USER churnwatch
WORKDIR /home/churnwatch
ENV CHURNWATCH_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["churnwatch", "worker"]
