"""Property-based requests from the API's own OpenAPI document (schemathesis) against the app on PostgreSQL:
no operation answers a server error, and every status it answers is documented, with no token, a read
token and the admin token. Bounded to stay under a minute; the audit of issue 20 ran the same checks over
70k requests."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.helpers import AUTH, configure_in_process, forget_settings, make_token

EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance]


@pytest.fixture
def live(pg_url: str, redis_url: str, tmp_path, monkeypatch):
    """In-process settings on the test PostgreSQL database and Redis: both up, so a 503 is a finding."""
    configure_in_process(monkeypatch, tmp_path, pg_url, redis_url)
    yield
    forget_settings()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("who", ["anonymous", "read", "admin"])
def test_no_operation_answers_a_server_error_or_an_undocumented_status(live, who):
    # The schema loader's pytest integration needs a fixture-free schema; this drives each operation's
    # strategy itself, so the app can sit on the fixture's database.
    from services.api.app import create_app

    headers = {"anonymous": {}, "read": make_token("read")[1], "admin": AUTH}[who]
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
        def call(case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        call()
