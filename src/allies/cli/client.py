"""A small client of the allies API, for the CLI: writes go through the API so that validation,
encryption and the audit trail stay in one place."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote


class ApiUnreachable(Exception):
    """The API did not answer (not running, wrong URL, network)."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict
    etag: str | None = None


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def credentials_status(self, ally_id: str) -> Reply:
        return self._call("GET", f"/allies/{quote(ally_id, safe='')}/credentials")

    def set_credentials(self, ally_id: str, username: str, password: str) -> Reply:
        body = {"username": username, "password": password}
        return self._call("POST", f"/allies/{quote(ally_id, safe='')}/credentials", body)

    def credentials_versions(self, ally_id: str) -> Reply:
        return self._call("GET", f"/allies/{quote(ally_id, safe='')}/credentials/versions")

    def restore_credentials(self, ally_id: str, version: int, if_version: int | None = None) -> Reply:
        headers = {"If-Match": f'"{if_version}"'} if if_version is not None else {}
        path = f"/allies/{quote(ally_id, safe='')}/credentials/restore"
        return self._call("POST", path, {"version": version}, headers)

    def _call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Reply:
        url = self.base_url + path
        if not url.startswith(("http://", "https://")):
            raise ApiUnreachable(f"the API URL must start with http:// or https://, got {self.base_url!r}")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, _json(response.read()), response.headers.get("ETag"))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _json(error.read()), error.headers.get("ETag"))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ApiUnreachable(f"the API at {self.base_url} is unreachable ({reason})") from None


def _json(raw: bytes) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"message": raw.decode("utf-8", "replace")[:200]}
    return value if isinstance(value, dict) else {"message": str(value)}
