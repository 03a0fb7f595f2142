# One image, every role: `trackflow api`, `trackflow consumer`, `trackflow worker --group ...`.
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY trackflow trackflow
COPY api api
COPY cli cli
COPY consumer consumer
COPY media media
COPY pipeline pipeline
COPY tasks tasks
RUN python -m venv /opt/trackflow \
 && /opt/trackflow/bin/pip install -c constraints.txt . \
 && /opt/trackflow/bin/python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"

FROM python:3.11-slim-bookworm

# ffmpeg comes inside the installed imageio-ffmpeg wheel; no system package needed.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin trackflow
COPY --from=build /opt/trackflow /opt/trackflow
ENV PATH=/opt/trackflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRACKFLOW_DATA_DIR=/tmp/trackflow
USER 10001
WORKDIR /tmp
EXPOSE 8000
ENTRYPOINT ["trackflow"]
CMD ["--help"]
