# The OCOP bot in a container: the same steps as tests/test_installed_package.py (the wheel of
# this checkout, the dependencies exactly as uv.lock pins them, hash-checked), run as a user
# without privileges. See docs/deploy.md.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir "uv>=0.9,<1" \
 && mkdir /dist \
 && uv export --frozen --offline --no-dev --no-emit-project --format requirements-txt \
        -o /dist/requirements.txt \
 && pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim-bookworm
# pg_dump/pg_restore for `ocop-bot backup` on PostgreSQL: bookworm's client is version 15, so
# the server must be 15 (compose.yaml) or the client installed to match a newer one.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /srv/ocop --shell /usr/sbin/nologin ocop
COPY --from=build /dist /dist
RUN python -m venv /opt/ocop-bot \
 && /opt/ocop-bot/bin/pip install --no-cache-dir --require-hashes -r /dist/requirements.txt \
 && /opt/ocop-bot/bin/pip install --no-cache-dir --no-deps /dist/*.whl \
 && rm -rf /dist
USER ocop
WORKDIR /srv/ocop
ENV PATH=/opt/ocop-bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WEBHOOK_LISTEN=0.0.0.0
# The SQLite database (if used) and the daily backups.
VOLUME ["/srv/ocop/data"]
EXPOSE 8443
STOPSIGNAL SIGTERM
CMD ["ocop-bot", "run"]
