"""An id in a path beyond what an id column holds matches no route: 404 for every method,
never 405 (which the OpenAPI document does not list) and never a database error."""

from __future__ import annotations

import pytest
from collector_helpers import admin_token


@pytest.mark.parametrize("path", ["/api/v1/units/{}", "/api/v1/waivers/{}"])
@pytest.mark.parametrize("number", ["2147483648", "9999999999", "9" * 40])
def test_ids_beyond_the_column_are_404_for_every_method(app, path: str, number: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token(app)}"}
    client = app.test_client()
    url = path.format(number)
    for answer in (client.get(url, headers=headers),
                   client.patch(url, json={"name": "Phòng Tổ chức"}, headers=headers),
                   client.delete(url, headers=headers)):
        assert answer.status_code == 404, (url, answer.status_code, answer.get_json())
        assert answer.get_json()["error"] == "not_found"


def test_the_largest_id_still_reaches_the_handler(app) -> None:
    headers = {"Authorization": f"Bearer {admin_token(app)}"}
    answer = app.test_client().get("/api/v1/units/2147483647", headers=headers)
    assert answer.status_code == 404 and answer.get_json()["field"] != "path"
