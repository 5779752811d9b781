"""The chart renders what each value set asks for, lints clean and validates offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, Names, Rendered, helm, tool, value_sets

VALUE_SETS = list(value_sets(Names("x")))
LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _operator(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment", f"{rendered.release}-emailsettings-operator")


def test_lint_strict_defaults() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict(value_set: str, all_values: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(all_values[value_set]))
    out = helm("lint", "--strict", str(CHART), "--values", str(values))
    assert "0 chart(s) failed" in out


@pytest.mark.kube
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_kubeconform_offline(
    value_set: str, renders: dict[str, Rendered], offline_schemas: Path, tmp_path: Path
) -> None:
    rendered = renders[value_set]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(rendered.text)
    result = subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            # The Prometheus Operator's CRD is not part of this project; the
            # ServiceMonitor's wiring is checked in test_service_monitor_scrapes_metrics.
            "-skip",
            "ServiceMonitor",
            "-schema-location",
            f"{offline_schemas}/{LOCATION}",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report["resources"], indent=1)
    summary = report["summary"]
    assert summary["invalid"] == summary["errors"] == 0
    # Every rendered object was validated (none silently skipped for a missing schema).
    skipped = len(rendered.all("ServiceMonitor"))
    assert summary["valid"] == len(rendered.docs) - skipped


def test_schema_rejects_unknown_and_wrong_values(tmp_path: Path) -> None:
    cases = {
        "--set=bogus=1": "additional properties 'bogus' not allowed",
        "--set=operator.replicaCount=2": "additional properties 'replicaCount' not allowed",
        "--set=emailSettings.smtp.encryption=SSL": "encryption",
        "--set=emailSettings.verification.mode=Verify": "mode",
        "--set=operator.logFormat=xml": "logFormat",
        "--set=sidecar.passwordFrom=env": "passwordFrom",
        "--set=peering.priority=high": "priority",
        "--set=watch.namespaces={Bad_Name}": "namespaces",
    }
    for flag, message in cases.items():
        out = helm("template", "r", str(CHART), flag, check=False)
        assert "values don't meet the specifications" in out, flag
        assert message in out, (flag, out)


def test_required_settings_fail_with_a_clear_message() -> None:
    base = ["template", "r", str(CHART), "--set=emailSettings.create=true"]
    out = helm(*base, check=False)
    assert "emailSettings.smtp.host is required" in out
    out = helm(*base, "--set=emailSettings.smtp.host=h", check=False)
    assert "emailSettings.sender is required" in out
    out = helm(
        *base, "--set=emailSettings.smtp.host=h", "--set=emailSettings.sender=a@b.c", check=False
    )
    assert "at least one recipient" in out
    with_recipient = [*base, "--set=emailSettings.smtp.host=h", "--set=emailSettings.sender=a@b.c"]
    with_recipient.append("--set=emailSettings.recipients.error=x@y.z")
    out = helm(*with_recipient, "--set=emailSettings.smtp.username=u", check=False)
    assert "needs a password" in out
    out = helm(
        "template", "r", str(CHART), "--set=metrics.serviceMonitor.enabled=true", check=False
    )
    assert "needs metrics.service.enabled" in out


def test_settings_from_values(renders: dict[str, Rendered]) -> None:
    rendered = renders["settings"]
    settings = rendered.one("EmailSettings")
    assert settings["metadata"]["namespace"] == rendered.namespace
    assert settings["spec"] == {
        "enabled": True,
        "smtp": {
            "host": "mail.example.com",
            "port": 465,
            "encryption": "TLS",
            "username": "notifier@example.com",
            "passwordSecretRef": {"name": "default-smtp-password", "key": "password"},
            "allowPlaintextAuth": False,
            "connectTimeoutSeconds": 10,
            "tls": {"caBundleRef": {"kind": "ConfigMap", "name": "smtp-ca", "key": "ca.crt"}},
        },
        "sender": "Ops Team <notifier@example.com>",
        # The seed's "a; b" strings become lists; commas separate too, as in the API's parser.
        "recipients": {
            "administrative": ["admin@example.com", "ops@example.com"],
            "error": ["dev@example.com", "oncall@example.com", "lead@example.com"],
            "support": [],
        },
        "verification": {"mode": "VerifyAndSave", "interval": "30m", "sendTestMessage": False},
    }
    secret = rendered.one("Secret", "default-smtp-password")
    assert secret["data"] == {"password": "czNjcmV0"}  # base64 of s3cret


def test_recipient_splitting_matches_the_api_parser(tmp_path: Path) -> None:
    from emailsettings.api.addresses import split_recipients  # noqa: PLC0415

    seed = "a@example.com; b@example.com,c@example.com\n d@example.com;;"
    values = {
        "emailSettings": {
            "create": True,
            "smtp": {"host": "h.example.com"},
            "sender": "s@example.com",
            "recipients": {"administrative": seed},
        }
    }
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(values))
    docs = yaml.safe_load_all(helm("template", "r", str(CHART), "-f", str(path)))
    settings = next(d for d in docs if d and d["kind"] == "EmailSettings")
    assert settings["spec"]["recipients"]["administrative"] == split_recipients(seed)


def test_existing_secret_is_referenced_not_created(renders: dict[str, Rendered]) -> None:
    rendered = renders["namespaced-ha"]
    settings = rendered.one("EmailSettings", "app-mail")
    assert settings["spec"]["smtp"]["passwordSecretRef"] == {
        "name": "smtp-credentials",
        "key": "token",
    }
    assert settings["spec"]["verification"]["mode"] == "Save"
    assert not [s for s in rendered.all("Secret") if s["metadata"]["name"] == "smtp-credentials"]


def test_custom_resources_wait_for_their_crd_on_first_install(tmp_path: Path) -> None:
    """First install: objects of a CRD the release installs are post-install hooks with
    Helm's ownership metadata; once the API exists (upgrade) they are plain objects."""
    args = [
        "template",
        "r",
        str(CHART),
        "-n",
        "ns",
        "--set=operator.replicas=2",
        "--set=emailSettings.create=true,emailSettings.smtp.host=h,emailSettings.sender=s@x.io",
        "--set=emailSettings.recipients.error=e@x.io",
    ]
    first = [d for d in yaml.safe_load_all(helm(*args)) if d]
    for kind in ("EmailSettings", "KopfPeering"):
        obj = next(d for d in first if d["kind"] == kind)
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install"
        assert annotations["meta.helm.sh/release-name"] == "r"
        assert annotations["meta.helm.sh/release-namespace"] == "ns"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    upgrade = [
        *args,
        "--is-upgrade",
        "--api-versions=emailsettings.io/v1alpha1/EmailSettings",
        "--api-versions=kopf.dev/v1/KopfPeering",
        "--skip-tests",
    ]
    for obj in (d for d in yaml.safe_load_all(helm(*upgrade)) if d):
        assert "helm.sh/hook" not in (obj["metadata"].get("annotations") or {})


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_operator_pod_is_hardened(value_set: str, renders: dict[str, Rendered]) -> None:
    rendered = renders[value_set]
    pod = _operator(rendered)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    assert container["command"] == ["emailsettings-operator"]


def test_operator_environment(renders: dict[str, Rendered], names: Names) -> None:
    env = _env(_operator(renders["defaults"])["spec"]["template"]["spec"]["containers"][0])
    assert env["EMAILSETTINGS_NAMESPACES"] == names.release_namespace
    assert env["EMAILSETTINGS_PEERING"] == ""  # one replica: standalone
    assert env["EMAILSETTINGS_LOG_FORMAT"] == "json"
    assert env["EMAILSETTINGS_LOG_LEVEL"] == "INFO"
    assert env["EMAILSETTINGS_HEALTH_PORT"] == "8081"
    assert env["EMAILSETTINGS_METRICS_PORT"] == "8080"
    assert env["EMAILSETTINGS_MAX_CONCURRENT_VERIFICATIONS"] == "16"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    ha = renders["namespaced-ha"]
    env = _env(_operator(ha)["spec"]["template"]["spec"]["containers"][0])
    assert env["EMAILSETTINGS_NAMESPACES"] == ",".join(names.watched)
    cluster = _env(_operator(renders["cluster-ha"])["spec"]["template"]["spec"]["containers"][0])
    assert cluster["EMAILSETTINGS_NAMESPACES"] == ""  # cluster mode


def test_peering_with_replicas(renders: dict[str, Rendered], names: Names) -> None:
    for value_set, kind in (("namespaced-ha", "KopfPeering"), ("cluster-ha", "ClusterKopfPeering")):
        rendered = renders[value_set]
        deployment = _operator(rendered)
        env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
        peering = f"{rendered.release}-emailsettings-operator"
        assert env["EMAILSETTINGS_PEERING"] == peering
        # Equal priorities would freeze every replica: "auto" draws a distinct one each.
        assert env["EMAILSETTINGS_PRIORITY"] == "auto"
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        objects = rendered.all(kind)
        assert {o["metadata"]["name"] for o in objects} == {peering}
        (crd,) = [
            c for c in rendered.all("CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"
        ]
        assert crd["spec"]["names"]["kind"] == kind
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    namespaced = renders["namespaced-ha"].all("KopfPeering")
    assert sorted(o["metadata"]["namespace"] for o in namespaced) == sorted(names.watched)
    standalone = renders["defaults"]
    assert not standalone.all("KopfPeering")
    assert _operator(standalone)["spec"]["strategy"] == {"type": "Recreate"}


def test_pod_disruption_budget(renders: dict[str, Rendered]) -> None:
    default = renders["defaults"].one("PodDisruptionBudget")["spec"]
    assert default["maxUnavailable"] == 1
    assert "minAvailable" not in default
    ha = renders["cluster-ha"].one("PodDisruptionBudget")["spec"]
    assert ha["minAvailable"] == 2
    assert "maxUnavailable" not in ha
    operator = _operator(renders["cluster-ha"])["spec"]["selector"]["matchLabels"]
    assert ha["selector"]["matchLabels"] == operator
    assert not renders["minimal"].all("PodDisruptionBudget")


def test_service_monitor_scrapes_metrics(renders: dict[str, Rendered]) -> None:
    rendered = renders["settings"]
    service = rendered.one("Service", f"{rendered.release}-emailsettings-operator-metrics")
    monitor = rendered.one("ServiceMonitor")
    labels = service["metadata"]["labels"]
    assert all(labels[k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [rendered.namespace]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    pod_labels = _operator(rendered)["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert not renders["defaults"].all("Service")


def _rules(role: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (group, resource, verb, ",".join(rule.get("resourceNames", [])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    )


OPERATOR_RULES = [
    ("", "configmaps", "get", ""),
    ("", "configmaps", "list", ""),
    ("", "configmaps", "watch", ""),
    ("", "events", "create", ""),
    ("", "events", "patch", ""),
    ("", "secrets", "get", ""),
    ("", "secrets", "list", ""),
    ("", "secrets", "watch", ""),
    ("emailsettings.io", "emailsettings", "get", ""),
    ("emailsettings.io", "emailsettings", "list", ""),
    ("emailsettings.io", "emailsettings", "watch", ""),
    ("emailsettings.io", "emailsettings/status", "get", ""),
    ("emailsettings.io", "emailsettings/status", "patch", ""),
    ("events.k8s.io", "events", "create", ""),
    ("events.k8s.io", "events", "patch", ""),
]


def test_operator_rbac_is_exactly_what_it_uses(renders: dict[str, Rendered], names: Names) -> None:
    defaults = renders["defaults"]
    (role,) = defaults.all("Role")
    assert role["metadata"]["namespace"] == names.release_namespace
    assert _rules(role) == OPERATOR_RULES
    assert not defaults.all("ClusterRole")
    assert not defaults.all("ClusterRoleBinding")

    ha = renders["namespaced-ha"]
    roles = [r for r in ha.all("Role") if r["metadata"]["name"].endswith("-operator")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(names.watched)
    peering = f"{ha.release}-emailsettings-operator"
    for role in roles:
        assert _rules(role) == sorted(
            [
                *OPERATOR_RULES,
                ("kopf.dev", "kopfpeerings", "get", ""),
                ("kopf.dev", "kopfpeerings", "list", ""),
                ("kopf.dev", "kopfpeerings", "watch", ""),
                ("kopf.dev", "kopfpeerings", "patch", peering),
            ]
        )
    bindings = [b for b in ha.all("RoleBinding") if b["metadata"]["name"].endswith("-operator")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(names.watched)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": peering, "namespace": names.release_namespace}
        ]

    cluster = renders["cluster-ha"]
    (cluster_role,) = cluster.all("ClusterRole")
    peering = f"{cluster.release}-emailsettings-operator"
    assert _rules(cluster_role) == sorted(
        [
            *OPERATOR_RULES,
            ("kopf.dev", "clusterkopfpeerings", "get", ""),
            ("kopf.dev", "clusterkopfpeerings", "list", ""),
            ("kopf.dev", "clusterkopfpeerings", "watch", ""),
            ("kopf.dev", "clusterkopfpeerings", "patch", peering),
        ]
    )
    operator_roles = [r for r in cluster.all("Role") if r["metadata"]["name"].endswith("operator")]
    assert not operator_roles
    assert not renders["minimal"].all("Role")
    assert not renders["minimal"].all("ServiceAccount")
    pod = _operator(renders["minimal"])["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "preexisting"


def test_sidecar_rbac_is_limited_to_one_object(renders: dict[str, Rendered]) -> None:
    settings = renders["settings"]
    role = settings.one("Role", f"{settings.release}-emailsettings-operator-notifier")
    assert _rules(role) == [
        ("emailsettings.io", "emailsettings", verb, "default") for verb in ("get", "list", "watch")
    ]
    ha = renders["namespaced-ha"]
    role = ha.one("Role", f"{ha.release}-emailsettings-operator-notifier")
    assert role["metadata"]["namespace"] == ha.values["emailSettings"]["namespace"]
    assert _rules(role) == sorted(
        [
            ("", "secrets", "get", "smtp-credentials"),
            *[
                ("emailsettings.io", "emailsettings", v, "app-mail")
                for v in ("get", "list", "watch")
            ],
        ]
    )


def test_sidecar_named_template_wiring(renders: dict[str, Rendered]) -> None:
    rendered = renders["settings"]
    deployment = rendered.one(
        "Deployment", f"{rendered.release}-emailsettings-operator-example-app"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == f"{rendered.release}-emailsettings-operator-notifier"
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: starts first, stops last
    assert sidecar["command"] == ["emailsettings-sidecar"]
    env = _env(sidecar)
    assert env["EMAILSETTINGS_NAME"] == "default"
    assert env["EMAILSETTINGS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["EMAILSETTINGS_LISTEN"] == "127.0.0.1:8090"
    assert env["EMAILSETTINGS_SECRET_SOURCE"] == "file"
    # The SMTP intake is off in the sidecar itself and on in the chart's wiring, on loopback.
    assert env["EMAILSETTINGS_SMTP_LISTEN"] == "127.0.0.1:2525"
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["emailsettings-smtp-secret"] == env["EMAILSETTINGS_SECRET_DIR"]
    assert volumes["emailsettings-smtp-secret"]["secret"]["secretName"] == "default-smtp-password"
    assert mounts["emailsettings-smtp-ca"] == env["EMAILSETTINGS_CA_DIR"]
    assert volumes["emailsettings-smtp-ca"]["configMap"]["name"] == "smtp-ca"
    assert mounts["emailsettings-spool"] == env["EMAILSETTINGS_SPOOL_DIR"]
    assert "emptyDir" in volumes["emailsettings-spool"]
    assert {p["path"] for p in _probes(sidecar)} == {"/healthz", "/readyz"}
    (app,) = pod["containers"]
    assert _env(app)["EMAILSETTINGS_SIDECAR_URL"] == "http://127.0.0.1:8090"
    # passwordFrom=api: nothing mounted, the Role names the Secret instead.
    assert not renders["namespaced-ha"].all("Deployment")[1:]


def test_sidecar_smtp_intake_can_be_turned_off(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "emailSettings": {
                    "create": True,
                    "smtp": {"host": "mail.example.com"},
                    "sender": "n@example.com",
                    "recipients": {"administrative": "a@example.com"},
                },
                "sidecar": {
                    "rbac": {"create": True},
                    "exampleWorkload": {"enabled": True},
                    "smtpPort": 0,
                },
            }
        )
    )
    text = helm("template", "off", str(CHART), "--values", str(values))
    containers = [
        container
        for doc in yaml.safe_load_all(text)
        if doc and doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"].get("initContainers", [])
    ]
    assert containers
    assert all("EMAILSETTINGS_SMTP_LISTEN" not in _env(c) for c in containers)


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    return [container[k]["httpGet"] for k in kinds if k in container]


def test_sidecar_entry_point_and_env_match_its_config() -> None:
    from emailsettings.sidecar import config  # noqa: PLC0415

    known = {option.env for option in config.OPTIONS}
    template = (CHART / "templates" / "_sidecar.tpl").read_text()
    used = {
        line.split("EMAILSETTINGS_")[1].split()[0]
        for line in template.splitlines()
        if "- name: EMAILSETTINGS_" in line
    }
    assert used
    assert {f"EMAILSETTINGS_{name}" for name in used} <= known


def test_helm_test_hook(renders: dict[str, Rendered]) -> None:
    rendered = renders["settings"]
    hooks = rendered.hooks("test")
    assert {h["kind"] for h in hooks} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Pod",
    }
    pod = next(h for h in hooks if h["kind"] == "Pod")
    assert pod["spec"]["restartPolicy"] == "Never"
    role = next(h for h in hooks if h["kind"] == "Role")
    assert _rules(role) == [
        ("emailsettings.io", "emailsettings", verb, "default") for verb in ("get", "list", "watch")
    ]
    script = next(h for h in hooks if h["kind"] == "ConfigMap")["data"]["wait-ready.py"]
    assert script == (CHART / "files" / "wait-ready.py").read_text()
    assert not renders["defaults"].hooks("test")  # nothing to wait for without settings
    assert not renders["minimal"].hooks("test")


@pytest.mark.kube
def test_offline_schemas_are_strict(offline_schemas: Path, tmp_path: Path) -> None:
    """The generated schemas catch what matters: unknown fields, wrong types, CRD rules."""
    bad = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "typo"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": 1}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "unknown-field"},
            "spec": {"ports": [{"port": 80, "targetPort": "http"}], "selectr": {}},
        },
        {
            "apiVersion": "emailsettings.io/v1alpha1",
            "kind": "EmailSettings",
            "metadata": {"name": "bad-encryption"},
            "spec": {"smtp": {"host": "h", "encryption": "SSL"}, "sender": "a@example.com"},
        },
    ]
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump_all(bad))
    result = subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            "-output",
            "json",
            "-schema-location",
            f"{offline_schemas}/{LOCATION}",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1
    assert {r["name"]: r["status"] for r in report["resources"]} == {
        "typo": "statusInvalid",
        "unknown-field": "statusInvalid",
        "bad-encryption": "statusInvalid",
    }


PREFIX = "emailsettings-operator.sidecar"


def test_sidecar_templates_work_when_copied_into_an_application_chart(tmp_path: Path) -> None:
    """docs/helm.md's recipe: _sidecar.tpl copied alone into another chart."""
    chart = tmp_path / "shop"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: shop\nversion: 1.0.0\n")
    (chart / "templates" / "_sidecar.tpl").write_text(
        (CHART / "templates" / "_sidecar.tpl").read_text()
    )
    args = (
        '(dict "emailSettings" "shop-mail" "image" "reg.example.com/eso:1" '
        '"passwordFrom" "api" "passwordSecret" "smtp" "caBundle" (dict "name" "ca") '
        '"native" false "port" 9000)'
    )
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop}\nspec:\n"
        "  selector: {matchLabels: {app: shop}}\n  template:\n"
        "    metadata: {labels: {app: shop}}\n    spec:\n      containers:\n"
        "        - {name: app, image: shop}\n"
        f'        {{{{- include "{PREFIX}.container" {args} | nindent 8 }}}}\n'
        "      volumes:\n"
        f'        {{{{- include "{PREFIX}.volumes" {args} | nindent 8 }}}}\n'
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: shop}\n"
        "rules:\n"
        f'  {{{{- include "{PREFIX}.rules" {args} | nindent 2 }}}}\n'
    )
    docs = [d for d in yaml.safe_load_all(helm("template", "shop", str(chart))) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    _app, sidecar = pod["containers"]
    assert "restartPolicy" not in sidecar  # native=false: a plain container
    env = _env(sidecar)
    assert env["EMAILSETTINGS_NAME"] == "shop-mail"
    assert env["EMAILSETTINGS_LISTEN"] == "127.0.0.1:9000"
    assert env["EMAILSETTINGS_SECRET_SOURCE"] == "api"
    assert {v["name"] for v in pod["volumes"]} == {"emailsettings-spool", "emailsettings-tmp"}
    role = next(d for d in docs if d["kind"] == "Role")
    assert _rules(role) == sorted(
        [
            ("", "secrets", "get", "ca"),
            ("", "secrets", "get", "smtp"),
            *[
                ("emailsettings.io", "emailsettings", v, "shop-mail")
                for v in ("get", "list", "watch")
            ],
        ]
    )
