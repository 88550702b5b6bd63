"""The bare-bones reference for `make bench`: the same primary-key SELECT and jsonb_set UPDATE as
the allies API, in a few lines of Flask on the same pool and server, without validation,
encryption, audit or access log. What the full app is measured against."""

import os

from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

app = Flask(__name__)
pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=4, open=True)


@app.get("/allies/<ally_id>/credentials")
def status(ally_id):
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT data::jsonb -> 'credentials' FROM stores WHERE id = %s", (ally_id,)
        ).fetchone()
    if row is None:
        return jsonify({"message": "Ally was not found"}), 404
    if row[0] is None:
        return jsonify({"message": "Ally does not have credentials set!"}), 400
    return jsonify({"message": "Ally has credentials set!"})


@app.post("/allies/<ally_id>/credentials")
def add(ally_id):
    body = request.get_json()
    with pool.connection() as conn:
        row = conn.execute(
            "UPDATE stores SET data = jsonb_set(data::jsonb, '{credentials}', %s) WHERE id = %s "
            "RETURNING data ->> 'name'",
            (Jsonb(body), ally_id),
        ).fetchone()
    return jsonify({"message": "Credentials added", "allyId": ally_id, "allyName": row[0]})
