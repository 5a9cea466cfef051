"""Deploy artifacts that cannot run here (no Docker engine, no Kubernetes, no Grafana server)
checked by the tools that can read them: the Compose specification's schema
(check-jsonschema's vendored copy), the Kubernetes schemas (kubernetes-validate), a Dockerfile
parser (dockerfile-parse), systemd's own verifier, and for the dashboard's SQL table a real
PostgreSQL holding a real store's blocked-send log."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import Settings
from gateway.metrics import Metrics
from tests.ops.tools import DASHBOARD, DEPLOY, GRAFANA, REPO, module, tool, unavailable

KUBERNETES = DEPLOY / "kubernetes"
SECRET_SETTINGS = sorted(
    name for name, f in Settings.__dataclass_fields__.items() if "Secret" in str(f.type)
)
SECRET_WORDS = re.compile(r"(?i)(token|secret|password|passwd|jwt|api_?key|private)")


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


# --- Compose --------------------------------------------------------------------------------


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    module("check_jsonschema")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_validates_against_the_compose_schema() -> None:
    result = check_jsonschema(
        "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_does_reject_a_mistake(tmp_path: Path) -> None:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    document["services"]["gateway-1"]["healthcheck"]["retries"] = "three"
    document["services"]["prometheus"]["portz"] = ["9090:9090"]
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0


def test_compose_runs_the_promised_stack_without_baked_secrets() -> None:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = document["services"]
    assert set(services) == {
        "postgres",
        "carrier-sim",
        "gateway-1",
        "gateway-2",
        "prometheus",
        "grafana",
    }
    for name in ("gateway-1", "gateway-2"):
        env = services[name]["environment"]
        assert env["STOPGATE_STORE"].startswith("postgresql://")
        assert env["STOPGATE_TWILIO_UPSTREAM"] == "http://carrier-sim:8090"
    for name, service in services.items():
        for key, raw in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key) or key == "STOPGATE_STORE":
                # Only interpolated from the environment (deploy/.env), never a literal.
                assert "${" in str(raw) and ":?" in str(raw), f"{name}: {key} is a literal"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else None
            if source and source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    # Prometheus scrapes exactly the two gateways compose runs.
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["gateway-1:8080", "gateway-2:8080"]


# --- Kubernetes -----------------------------------------------------------------------------


def kubernetes_documents() -> list[tuple[Path, dict[str, Any]]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    return [
        (KUBERNETES / name, document)
        for name in kustomization["resources"]
        for document in load_yaml_documents(KUBERNETES / name)
    ]


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    validator = module("kubernetes_validate")
    kinds = []
    for path, document in kubernetes_documents():
        try:
            validator.validate(document, validator.latest_version(), strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{path.name}: {exc}")
        kinds.append(document["kind"])
    assert sorted(kinds) == sorted(
        ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
    )


def test_kubernetes_validation_does_reject_a_mistake() -> None:
    validator = module("kubernetes_validate")
    [(_, deployment)] = [(p, d) for p, d in kubernetes_documents() if d["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # a typo strict mode catches
    with pytest.raises(validator.ValidationError):
        validator.validate(broken, validator.latest_version(), strict=True)
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "two"
    with pytest.raises(validator.ValidationError):
        validator.validate(broken, validator.latest_version(), strict=True)


def test_the_deployment_keeps_its_promises() -> None:
    documents = {d["kind"]: d for _, d in kubernetes_documents()}
    deployment = documents["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Every secret setting comes from a Secret, none is written in the manifests.
    from_secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert "STOPGATE_STORE" in from_secrets
    config = documents["ConfigMap"]["data"]
    for key in config:
        assert not SECRET_WORDS.search(key), f"ConfigMap holds {key}"
    for entry in container["env"]:
        assert "value" not in entry or not SECRET_WORDS.search(entry["name"]), entry
    assert {f"STOPGATE_{name.upper()}" for name in SECRET_SETTINGS} <= from_secrets
    # The PodDisruptionBudget, HPA and Service select / target this Deployment's pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget",):
        selector = documents[kind]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
    assert documents["Service"]["spec"]["selector"].items() <= labels.items()
    target = documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert documents["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert documents["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_and_no_secrets() -> None:
    parse = module("dockerfile_parse")
    parser = parse.DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    froms = [i for i, (kind, _) in enumerate(instructions) if kind == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    final = instructions[froms[-1] :]
    users = [value for kind, value in final if kind == "USER"]
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    healthchecks = [value for kind, value in final if kind == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert "NONE" not in healthchecks[0].split()
    env = parser.envs  # the final stage's environment
    listen_port = env["STOPGATE_LISTEN"].rsplit(":", 1)[1]
    assert f":{listen_port}/healthz" in healthchecks[0]
    secret_names = {f"STOPGATE_{name.upper()}" for name in SECRET_SETTINGS}
    for kind, value in instructions:
        if kind in ("ENV", "ARG", "LABEL"):
            assert not SECRET_WORDS.search(value), f"{kind} {value}"
            assert not any(name in value for name in secret_names), f"{kind} {value}"
        if kind in ("COPY", "ADD"):
            assert ".env" not in value.split() and "*.db" not in value
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert ignore.splitlines()[1:2] == ["**"], "everything is excluded unless listed"
    assert ("ENTRYPOINT", '["stopgate"]') in final and ("CMD", '["serve"]') in final


def test_the_image_build_compiles_the_send_path_from_the_projects_own_build_files() -> None:
    parse = module("dockerfile_parse")
    parser = parse.DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    froms = [i for i, (kind, _) in enumerate(instructions) if kind == "FROM"]
    build = instructions[froms[0] : froms[1]]
    copied = " ".join(value for kind, value in build if kind == "COPY")
    for needed in (
        "pyproject.toml",
        "setup.py",
        "MANIFEST.in",
        "build_support",
        "gateway",
        "policy",
    ):
        assert needed in copied, f"the build stage copies {needed}"
    assert any(kind == "RUN" and "gcc" in value for kind, value in build), "a C compiler"
    assert any(kind == "RUN" and "STOPGATE_COMPILE=require" in value for kind, value in build), (
        "a failed compile fails the build"
    )
    runtime = instructions[froms[-1] :]
    assert any(kind == "RUN" and "n.STATE.compiled" in value for kind, value in runtime), (
        "the image checks that its installed build is used"
    )
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert {"!setup.py", "!MANIFEST.in", "!build_support/**"} <= set(ignore)
    assert ignore.index("**/*.so") > ignore.index("!gateway/**"), "a local build stays out"


# --- systemd --------------------------------------------------------------------------------


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "apt-get install -y systemd")
    unit = (DEPLOY / "systemd" / "stopgate.service").read_text(encoding="utf-8")
    # verify wants ExecStart's program to exist: point it at a stand-in, change nothing else.
    program = tmp_path / "stopgate"
    program.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    program.chmod(0o755)
    assert "ExecStart=/opt/stopgate/bin/stopgate serve" in unit
    copy_path = tmp_path / "stopgate.service"
    copy_path.write_text(unit.replace("/opt/stopgate/bin/stopgate", str(program)), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(copy_path)], capture_output=True, text=True, timeout=60, check=False
    )
    if "Failed to connect to bus" in result.stderr or "System has not been booted" in result.stderr:
        unavailable(f"systemd-analyze cannot verify here: {result.stderr.strip()}")
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )
    assert "\nUser=stopgate\n" in unit and "\nNoNewPrivileges=yes\n" in unit


def test_systemd_analyze_does_report_a_mistake(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "apt-get install -y systemd")
    unit = tmp_path / "bad.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nRestart=sometimes\n", encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "sometimes" in result.stderr


# --- Grafana --------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def test_dashboard_is_well_formed_and_uses_the_provisioned_datasources() -> None:
    document = dashboard()
    assert document["uid"] == "stopgate-overview" and document["title"] == "Stopgate"
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "stopgate.yaml").read_text(encoding="utf-8")
    )
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    ids = [p["id"] for p in document["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = []
    for panel in document["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        titles.append(panel["title"])
        source = panel["datasource"]
        assert uids.get(source["uid"]) == source["type"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source
            assert ("expr" in target) == (source["type"] == "prometheus")
    promised = [
        "Block rate",
        "Blocked recipients by reason",
        "Opt-outs by source",
        "Opt-ins by source",
        "Top business numbers by blocks (selected range)",
        "Gateway-added latency (upstream excluded)",
        "Carrier errors by kind",
        "Consent cache hit ratio",
        "Change feed",
        "Outbox backlog",
    ]
    assert set(promised) <= set(titles)
    # Secrets only through Grafana's environment interpolation.
    for source in provisioned["datasources"]:
        for value in (source.get("secureJsonData") or {}).values():
            assert value.startswith("${") and value.endswith("}")


def test_dashboard_provisioning_points_where_compose_mounts_the_dashboards() -> None:
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "stopgate.yaml").read_text(encoding="utf-8")
    )
    [provider] = providers["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert mounts["../grafana/dashboards"] == provider["options"]["path"]
    assert mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"
    environment = compose["services"]["grafana"]["environment"]
    text = (GRAFANA / "provisioning" / "datasources" / "stopgate.yaml").read_text(encoding="utf-8")
    for variable in re.findall(r"\$\{(\w+)\}", text):
        assert variable in environment, f"{variable} is not given to Grafana"


def top_numbers_sql() -> str:
    [panel] = [p for p in dashboard()["panels"] if p["title"].startswith("Top business numbers")]
    sql: str = panel["targets"][0]["rawSql"]
    return sql


async def test_top_business_numbers_query_runs_on_a_real_store() -> None:
    """The table's SQL, with Grafana's time macros filled in, against the blocked-send log a
    real PostgreSQL store wrote (its schema, not a copy of it)."""
    import asyncpg

    from gateway.store.base import BlockedSend
    from gateway.store.postgres import PostgresStore
    from tests.support import postgres

    try:
        server = postgres.server()
        base = server.__enter__()
    except postgres.NoPostgres as exc:
        unavailable(str(exc))
        return
    name = f"t_ops_{int(time.time() * 1000) % 10**9}"
    conn = await asyncpg.connect(base, timeout=10)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        store = PostgresStore(postgres.with_option(base, "schema", name))
        await store.open()
        now_us = int(time.time() * 1e6)
        try:
            for from_key, to_key, reason in (
                ("+16505550100", "+16505550111", "opt-out"),
                ("+16505550100", "+16505550111", "opt-out"),
                ("+16505550100", "+16505550112", "would-block:opt-out"),
                ("+16505550199", "+16505550113", "opt-out-all"),
                ("+16505550100", "+16505550114", "opt-out"),
            ):
                await store.log_blocked(
                    BlockedSend(now_us, "twilio", from_key, to_key, reason, "r", 5, "0" * 64)
                )
        finally:
            await store.close()
        sql = top_numbers_sql()
        assert "$__unixEpochFrom()" in sql and "$__unixEpochTo()" in sql
        sql = sql.replace("$__unixEpochFrom()", str(now_us // 1_000_000 - 60))
        sql = sql.replace("$__unixEpochTo()", str(now_us // 1_000_000 + 60))
        await conn.execute(f'SET search_path TO "{name}"')
        rows = [tuple(r) for r in await conn.fetch(sql)]
        assert rows == [("+16505550100", 4, 3, 1), ("+16505550199", 1, 1, 0)]
        # Outside the time range: nothing.
        late = top_numbers_sql().replace("$__unixEpochFrom()", str(now_us // 1_000_000 + 60))
        late = late.replace("$__unixEpochTo()", str(now_us // 1_000_000 + 120))
        assert await conn.fetch(late) == []
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await conn.close()
        server.__exit__(None, None, None)


# --- the operations guide -------------------------------------------------------------------


def test_operations_guide_lists_every_metric_and_alert() -> None:
    guide = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    metrics = Metrics()
    for family in metrics.registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        name = name + ("_info" if family.type == "info" else "")
        assert f"`{name}`" in guide, f"{name} is not in docs/operations.md"
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    for rule in alerts["groups"][0]["rules"]:
        assert f"`{rule['alert']}`" in guide, f"{rule['alert']} is not explained"
