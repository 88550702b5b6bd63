#!/usr/bin/env bash
# Case 3 — add the partner credentials of store 1f585fc9-4926-468c-a728-eb34d80e9ea1 (Barnes Inc)
# through the API: check, add, verify. The base URL comes from ALLIES_URL
# (default http://127.0.0.1:4000); when the API requires a token, it comes from ALLIES_TOKEN.
# Exits non-zero, saying why, if a step does not answer as documented.
#
# The body is sent from a quoted here-document, so the braces and colon of the password arrive
# intact (no shell expansion, no escaping to get wrong).
set -euo pipefail

ALLIES_URL="${ALLIES_URL:-http://127.0.0.1:4000}"
ALLY_ID="1f585fc9-4926-468c-a728-eb34d80e9ea1"
ENDPOINT="$ALLIES_URL/allies/$ALLY_ID/credentials"
AUTH=()
if [ -n "${ALLIES_TOKEN:-}" ]; then
    AUTH=(-H "Authorization: Bearer $ALLIES_TOKEN")
fi

# request METHOD EXPECTED_STATUS... : prints the body, fails unless the status is one expected.
request() {
    local method=$1
    shift
    local reply status body
    if [ "$method" = POST ]; then
        reply=$(curl -sS -w '\n%{http_code}' "${AUTH[@]}" -X POST "$ENDPOINT" \
            -H 'Content-Type: application/json' --data-binary @-)
    else
        reply=$(curl -sS -w '\n%{http_code}' "${AUTH[@]}" "$ENDPOINT")
    fi
    status=${reply##*$'\n'}
    body=${reply%$'\n'*}
    body=${body%$'\n'}
    echo "$status $body"
    for expected in "$@"; do
        [ "$status" = "$expected" ] && return 0
    done
    echo "add_credentials.sh: $method $ENDPOINT answered $status, expected $*" >&2
    return 1
}

echo "1. check:  GET $ENDPOINT"
request GET 200 400

echo "2. add:    POST $ENDPOINT"
request POST 200 <<'JSON'
{"username": "aliado_addi", "password": "}sxh7_5}BdJ4K:Qf"}
JSON

echo "3. verify: GET $ENDPOINT"
request GET 200
