# TuneBoard on CPU, with the embedded demo model converted at build time.
#   docker build -t tuneboard .
#   docker run --rm -p 7860:7860 -v "$PWD/saves:/app/saves" tuneboard
# NVIDIA GPUs: docker/Dockerfile.cuda; Ascend NPUs: docker/Dockerfile.ascend (README, "Docker").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TUNEBOARD_HOME=/opt/tuneboard \
    GRADIO_ANALYTICS_ENABLED=False

WORKDIR /app
COPY requirements.txt requirements-test.txt ./
COPY scripts/install.sh scripts/install.sh
RUN TUNEBOARD_TORCH=cpu bash scripts/install.sh

COPY app.py ./
COPY engine engine
COPY webui webui
COPY assets assets
# Convert the GGUF demo model once, so the first "Load model" is fast.
RUN python -c "from engine.core.demo_model import ensure_demo_model; ensure_demo_model()"

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
# Reachable from outside the container: add a login with -e TUNEBOARD_AUTH_FILE=... (README, "Configuration").
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
