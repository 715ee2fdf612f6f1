"""Fuzz the API from its own OpenAPI schema: whatever schemathesis sends, valid or
not, the API answers without a 5xx (the brokers are up)."""

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings

from queue_exp.api import create_app
from queue_exp.course import notebook
from queue_exp.course.run import fresh_namespace
from queue_exp.server import start_api

# the schema comes from the app object itself (no server, no broker needed for it);
# both valid and deliberately invalid requests are generated
schema = schemathesis.openapi.from_dict(create_app().openapi())
schema.config.generation.update(modes=["positive", "negative"])


@pytest.fixture(scope="module")
def live_api():
    api = start_api(namespace=fresh_namespace("fuzz"))
    app_settings = api.settings
    yield api
    api.stop()
    notebook.remove_api_resources(app_settings)


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_input_makes_the_api_fail(case, live_api):
    response = case.call(base_url=live_api.base_url, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}")
