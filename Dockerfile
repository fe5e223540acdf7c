# The churnwatch worker image (Kafka is a separate service: see docker-compose.yml).
#
# Optional: `docker build --build-arg MYPYC=1 .` compiles the sweep's modules with mypyc
# (streams/dev/mypyc_build.py): the same results, about a quarter to a third less CPU per sweep, and a longer
# image build (gcc and mypy in the build stage only). Default: pure Python, the reference.
# See docs/performance.md, "Compiled sweep (mypyc)".
FROM python:3.11-slim AS mypyc
ARG MYPYC=0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
RUN mkdir -p build/mypyc && if [ "$MYPYC" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
      && rm -rf /var/lib/apt/lists/* \
      && pip install --no-cache-dir "mypy==2.4.1" setuptools \
      && python -m streams.dev.mypyc_build build; \
    fi

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY deploy ./deploy
RUN pip install --no-cache-dir . && useradd --create-home churnwatch
# Empty unless built with MYPYC=1; then its compiled copy of the packages is imported first.
COPY --from=mypyc /app/build/mypyc /app/build/mypyc
ENV PYTHONPATH=/app/build/mypyc
USER churnwatch
WORKDIR /home/churnwatch
ENV CHURNWATCH_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["churnwatch", "worker"]
