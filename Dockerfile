# The allies API. Used by compose.yaml; the database is the `postgres` service (DATABASE_URL).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# src/allies/sql is a link to sql/: the runbook's SQL files are shipped inside the package.
COPY sql ./sql
RUN pip install --no-cache-dir .
ENV ALLIES_HOME=/var/lib/allies
EXPOSE 4000
# Seed an empty database, then hand the process over to gunicorn.
CMD ["sh", "-c", "allies db seed --if-empty && exec allies serve --host 0.0.0.0 --port 4000"]
