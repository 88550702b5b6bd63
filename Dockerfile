# The allies API image, used by compose.yaml (the database is its `postgres` service).
# Build arguments, for machines without an image registry (see docker/test.sh):
#   PYTHON_IMAGE  any image with Python 3.11+ and its venv module (default: the official one);
#   PIP_OPTIONS   e.g. "--no-index --find-links=.wheelhouse" to install wheels built beforehand.
ARG PYTHON_IMAGE=python:3.12-slim

# The allies wheel, with the triage's scanning core (C) compiled by gcc, which only this stage
# installs. When .wheelhouse holds an allies wheel (built beforehand, see above), it is used as is.
FROM ${PYTHON_IMAGE} AS wheel
ARG PIP_OPTIONS=""
WORKDIR /src
# .dockerignore lets in only what the package needs (and .wheelhouse when it exists).
COPY . .
RUN mkdir /wheels \
    && if ls .wheelhouse/allies-*.whl >/dev/null 2>&1; then cp .wheelhouse/allies-*.whl /wheels/; \
    else apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
        && python3 -m pip wheel --no-cache-dir --disable-pip-version-check --no-deps \
            --wheel-dir /wheels $PIP_OPTIONS . ; fi

FROM ${PYTHON_IMAGE}
ARG PIP_OPTIONS=""
WORKDIR /src
COPY . .
COPY --from=wheel /wheels /wheels
RUN python3 -m venv /opt/allies \
    && /opt/allies/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_OPTIONS /wheels/allies-*.whl \
    && rm -rf /src /wheels \
    && useradd --system --home-dir /var/lib/allies --create-home --shell /usr/sbin/nologin allies
ENV PATH=/opt/allies/bin:$PATH \
    ALLIES_HOME=/var/lib/allies \
    ALLIES_LOG_FILE=/var/lib/allies/log/server.log
# Not root: the home (key file, server log) is the `allies-home` volume, owned by this user.
USER allies
WORKDIR /var/lib/allies
RUN mkdir -p log
EXPOSE 4000
# Seed an empty database, then hand the process over to the server.
CMD ["sh", "-c", "allies db seed --if-empty && exec allies serve --host 0.0.0.0 --port 4000"]
