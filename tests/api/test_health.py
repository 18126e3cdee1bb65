def test_healthz_and_metrics_are_public(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/healthz", params={"deep": True}).json()["database"] == "ok"
    client.get("/api/v1/datalabs")
    metrics = client.get("/metrics").text
    assert 'datalabs_http_requests_total{method="GET",route="/api/v1/datalabs",status="401"}' in metrics


def test_openapi_docs(client):
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Datalabs API"
    assert "swagger" in client.get("/api/docs").text.lower()


def test_unknown_api_route_is_json_404(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
