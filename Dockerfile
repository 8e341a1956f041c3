# The archiver service image: `archiver run` as a non-root user, `archiver health` as its check.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY archiver ./archiver
COPY migrations ./migrations
COPY config ./config
# As a user installs it: a regular (non-editable) install; the migrations ship in the package.
RUN pip install --no-cache-dir .

RUN useradd --create-home --uid 10001 archiver && mkdir -p /data && chown archiver /data
USER archiver
WORKDIR /data
ENV ARCHIVER_DATABASE_URL=sqlite:////data/archiver.db
VOLUME ["/data"]
EXPOSE 9464

# The first catch-up cycle may take minutes on a large account: no verdict before then.
HEALTHCHECK --interval=5m --timeout=30s --start-period=15m --retries=2 CMD ["archiver", "health"]
CMD ["archiver", "run"]
