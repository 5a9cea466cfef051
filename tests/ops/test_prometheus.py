"""The Prometheus side, checked by Prometheus's own tools: the scrape config and the alert rules
(``promtool check``), what each alert does (``promtool test rules``), every PromQL expression
of the dashboard (parsed by ``promtool``, evaluated by a real Prometheus), the metric names
they use (all exported by a running gateway after the scripted traffic), and a real Prometheus
scraping a gateway and counting its blocked sends."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from gateway.app import create_app
from gateway.carriersim.app import create_sim_app
from gateway.carriersim.state import SimCredentials
from gateway.config import Secret, Settings
from tests.ops.conftest import BUSINESS, CONSENTS, OpsStack, scrape, value
from tests.ops.tools import (
    DASHBOARD,
    PROMETHEUS_DIR,
    metric_names,
    substitute_grafana_variables,
    tool,
)
from tests.support.processes import ServiceProcess
from tests.support.servers import ServerThread

ALERTS = PROMETHEUS_DIR / "alerts.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_BUILTIN = {"up"}
"""Series Prometheus itself writes for every target (the rules use ``up``)."""


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every Prometheus query of the dashboard."""
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return found


def rule_expressions() -> list[tuple[str, str]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [
        (rule["alert"], rule["expr"]) for group in document["groups"] for rule in group["rules"]
    ]


def as_recording_rules(expressions: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"stopgate:dashboard:{i}", "expr": substitute_grafana_variables(e)}
                    for i, (_, e) in enumerate(expressions)
                ],
            }
        ]
    }


# --- promtool -------------------------------------------------------------------------------


def test_promtool_checks_the_scrape_config_and_its_rule_files() -> None:
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 rule files found" in result.stdout


def test_promtool_checks_the_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    names = {name for name, _ in rule_expressions()}
    assert names == {
        "StopgateDown",
        "StopgateStoreUnreachable",
        "StopgateChangeFeedLost",
        "StopgateBlockRateSpike",
        "StopgateOptOutSpike",
        "StopgateUpstreamErrorRate",
        "StopgateOutboxBacklog",
        "StopgateConfirmationGivenUp",
    }


def test_each_alert_fires_on_its_condition_and_only_then() -> None:
    result = promtool("test", "rules", "alerts_test.yml", cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 25
    rules = tmp_path / "dashboard.rules.yml"
    rules.write_text(yaml.safe_dump(as_recording_rules(expressions)), encoding="utf-8")
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout


def test_promtool_does_refuse_a_broken_expression(tmp_path: Path) -> None:
    # The check above means something only if promtool rejects what does not parse.
    rules = tmp_path / "broken.rules.yml"
    broken = [("broken", "sum by (le (rate(stopgate_sends_total[1m]))")]
    rules.write_text(yaml.safe_dump(as_recording_rules(broken)), encoding="utf-8")
    result = promtool("check", "rules", str(rules))
    assert result.returncode != 0


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, operation) "
        "(rate(stopgate_store_latency_seconds_bucket"
        '{job="x", operation=~"get.*"}[5m] offset 1h))) / on (instance) group_left (version) '
        'stopgate_build_info and up{job="stopgate"} > 1e-9'
    )
    assert metric_names(expr) == {
        "stopgate_store_latency_seconds_bucket",
        "stopgate_build_info",
        "up",
    }


# --- names against a running gateway --------------------------------------------------------


def test_dashboard_and_rules_name_only_metrics_the_gateway_exports(ops_stack: OpsStack) -> None:
    samples = scrape(ops_stack.metrics_text())
    exported = set(samples)
    used: dict[str, set[str]] = {}
    for where, expr in dashboard_expressions() + rule_expressions():
        for name in metric_names(substitute_grafana_variables(expr)):
            used.setdefault(name, set()).add(where)
    assert used, "no metric name found in any expression"
    missing = {n: sorted(w) for n, w in used.items() if n not in exported | PROMETHEUS_BUILTIN}
    assert not missing, f"not exported by a running gateway: {missing}"
    # The scripted traffic is what these panels show: they have data, not just a name.
    mix = ops_stack.mix
    assert value(samples, "stopgate_sends_total", decision="blocked") == mix.blocked
    assert value(samples, "stopgate_blocked_recipients_total") == mix.blocked
    assert value(samples, "stopgate_consent_changes_total", source="Recipient") == 2
    assert value(samples, "stopgate_consent_changes_total", source="Api", status="OptOut") == 1
    assert value(samples, "stopgate_inbound_keywords_total", klass="opt_out") == 1
    assert value(samples, "stopgate_upstream_errors_total", kind="http-5xx") == 1
    assert value(samples, "stopgate_upstream_errors_total", kind="upstream-timeout") == 1
    assert value(samples, "stopgate_consent_cache_hits_total") >= 1
    assert value(samples, "stopgate_consent_cache_misses_total") >= 1
    # A send's miss reads the number and its erasure alias together (get_records_many).
    assert value(samples, "stopgate_store_latency_seconds_count", operation="get_records_many") >= 1
    assert value(samples, "stopgate_store_up") == 1
    assert value(samples, "stopgate_change_feed_healthy") == 1
    assert value(samples, "stopgate_build_info", version="0.1.0") == 1


def test_no_phone_number_is_a_label_value(ops_stack: OpsStack) -> None:
    text = ops_stack.metrics_text()
    for number in [*ops_stack.mix.customers, BUSINESS]:
        assert number.lstrip("+") not in text


# --- a real Prometheus ----------------------------------------------------------------------


@dataclasses.dataclass
class Running:
    gateway: ServerThread
    prometheus: ServiceProcess

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = requests.get(
            f"{self.prometheus.url}/api/v1/query", params={"query": expr}, timeout=10
        )
        body = reply.json()
        assert reply.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture
def prometheus_on_a_gateway(tmp_path: Path) -> Iterator[Running]:
    binary = tool("prometheus")
    credentials = SimCredentials()
    sim = ServerThread(lambda: create_sim_app(credentials=credentials))
    with sim:
        settings = Settings(
            store=f"sqlite:///{tmp_path / 'stopgate.db'}",
            spool_path=str(tmp_path / "spool.jsonl"),
            ringcentral_upstream=sim.url,
            twilio_upstream=sim.url,
            twilio_auth_token=Secret(credentials.twilio_auth_token),
            admin_token=Secret("prometheus-test-admin"),
        )
        with ServerThread(lambda: create_app(settings)) as gateway:
            shutil.copy(ALERTS, tmp_path / "alerts.yml")
            config = tmp_path / "prometheus.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                        "rule_files": ["alerts.yml"],
                        "scrape_configs": [
                            {
                                "job_name": "stopgate",
                                "static_configs": [{"targets": [f"127.0.0.1:{gateway.port}"]}],
                            }
                        ],
                    }
                ),
                encoding="utf-8",
            )
            prometheus = ServiceProcess(
                "prometheus",
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    "--web.listen-address={listen}",
                    "--storage.tsdb.retention.time=1h",
                ],
                health_path="/-/ready",
                log_dir=tmp_path,
                cwd=tmp_path,
            )
            with prometheus:
                running = Running(gateway, prometheus)
                wait(lambda: _ready(prometheus.url), 30, "Prometheus to be ready")
                yield running


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_prometheus_counts_the_blocked_sends_it_scraped(
    prometheus_on_a_gateway: Running,
) -> None:
    running = prometheus_on_a_gateway
    url = running.gateway.url
    credentials = SimCredentials()
    auth = (credentials.twilio_account_sid, credentials.twilio_auth_token)
    send = f"{url}/2010-04-01/Accounts/{credentials.twilio_account_sid}/Messages.json"
    wait(lambda: running.query('up{job="stopgate"} == 1'), 30, "Prometheus to scrape the gateway")
    blocked_sends = 7
    customers = [f"+1650555{n:04d}" for n in range(400, 400 + blocked_sends)]
    with requests.Session() as http:
        reply = http.patch(
            f"{url}{CONSENTS}",
            json={
                "records": [{"from": BUSINESS, "to": c, "optStatus": "OptOut"} for c in customers]
            },
            headers={"Authorization": "Bearer prometheus-test-admin"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        for customer in customers:
            reply = http.post(
                send, data={"To": customer, "From": BUSINESS, "Body": "hi"}, auth=auth, timeout=10
            )
            assert reply.status_code == 400 and reply.json()["code"] == 21610, reply.text
        reply = http.post(
            send, data={"To": "+16505550499", "From": BUSINESS, "Body": "hi"}, auth=auth, timeout=10
        )
        assert reply.status_code == 201, reply.text

    def counted() -> float | None:
        result = running.query('sum(stopgate_sends_total{job="stopgate", decision="blocked"})')
        got = float(result[0]["value"][1]) if result else None
        return got if got == blocked_sends else None

    assert wait(counted, 30, f"Prometheus to count {blocked_sends} blocked sends") == 7
    [allowed] = running.query('sum(stopgate_sends_total{decision="allowed"})')
    assert float(allowed["value"][1]) == 1
    [opt_outs] = running.query('sum(stopgate_consent_changes_total{status="OptOut"})')
    assert float(opt_outs["value"][1]) == blocked_sends

    # Every dashboard expression evaluates in this Prometheus (not only parses).
    for _, expr in dashboard_expressions():
        running.query(substitute_grafana_variables(expr))

    # And the alert rules are loaded and evaluated without error, none firing.
    rules = requests.get(f"{running.prometheus.url}/api/v1/rules", timeout=10).json()
    loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
    assert len(loaded) == len(rule_expressions())
    wait(
        lambda: all(r.get("lastEvaluation", "").startswith("2") for r in _rules(running)),
        30,
        "every rule to be evaluated",
    )
    assert {r["name"]: r["health"] for r in _rules(running)} == {
        name: "ok" for name, _ in rule_expressions()
    }
    assert not [r["name"] for r in _rules(running) if r["state"] != "inactive"]


def _rules(running: Running) -> list[dict[str, Any]]:
    reply = requests.get(f"{running.prometheus.url}/api/v1/rules", timeout=10).json()
    return [r for g in reply["data"]["groups"] for r in g["rules"]]
