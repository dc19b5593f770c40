"""The Helm chart, charts/finops-operator, against the kustomize manifests it mirrors.

Helm v4 is built from its Go module by scripts/build-helm.sh (cached; the tests fail,
never skip, when it cannot be built). Checked here:

- `helm lint --strict` with the default values and with other value sets;
- `helm template` with the default values renders the objects of
  `kubectl kustomize manifests/` (and of manifests/dashboards/), with
  `webhook.certManager.enabled` those of manifests/cert-manager/: same kinds, names,
  namespaces, RBAC rules, webhook rules and selectors, Deployment spec and
  configuration. Every difference is listed in `INTENDED` below and in docs/helm.md;
  since the RBAC is equal, the checks of test_install_manifests.py (derived from the
  code) hold for the chart too;
- other value sets do what their keys say, and render objects valid for Kubernetes;
- values.schema.json (scripts/gen_chart_schema.py, from the operator's configuration
  model) is up to date, accepts what the operator accepts and refuses bad values with
  a message naming the key;
- the copies the chart carries (CRDs, webhook configurations, health alerts,
  dashboards) are byte-identical to their sources.

Installing, upgrading and uninstalling on a real API server: tests/e2e/test_helm_chart.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from finops_operator.domain.config import Config, parse_config
from finops_operator.errors import ConfigError
from tests.support.paths import ROOT
from tests.support.tools import needs_tool

CHART = ROOT / "charts" / "finops-operator"
MANIFESTS = ROOT / "manifests"
BUILD = ROOT / "scripts" / "build-helm.sh"
KUBECTL = shutil.which("kubectl")
NAMESPACE = "finops-system"
HELM_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
# What the chart renders differently from the kustomize manifests, on purpose (docs/helm.md).
INTENDED = {
    "namespace": "the chart does not create its namespace (helm install --create-namespace)",
    "labels": f"every object carries Helm's labels {HELM_LABELS}",
    "checksum": "the pods carry checksum/config, so a change of `config` rolls them",
    "dashboards": "the dashboards of manifests/dashboards/ are part of the chart",
}

Obj = dict[str, Any]
Key = tuple[str, str, str, str]


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run(
        ["bash", str(BUILD)], capture_output=True, text=True, timeout=3000, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"scripts/build-helm.sh failed:\n{built.stderr[-4000:]}")
    return built.stdout.strip().splitlines()[-1]


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [helm, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # No user configuration, cache or kubeconfig leaks into the tests.
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "HELM_CACHE_HOME": "/nonexistent"},
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
    return proc


def values_args(values: Mapping[str, Any] | None, tmp: Path) -> list[str]:
    if not values:
        return []
    file = tmp / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
    file.write_text(yaml.safe_dump(dict(values)), encoding="utf-8")
    return ["--values", str(file)]


def template(
    helm: str,
    tmp: Path,
    values: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    *extra: str,
) -> list[Obj]:
    proc = run_helm(
        helm,
        "template",
        "finops-operator",
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        *values_args(values, tmp),
        *extra,
    )
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def key(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


def kustomize(folder: Path) -> list[Obj]:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def without_helm_additions(obj: Obj) -> Obj:
    """The object as kustomize would have it: INTENDED's labels and checksum taken out."""
    obj = copy.deepcopy(obj)
    labels = obj["metadata"].get("labels", {})
    for label in HELM_LABELS:
        labels.pop(label, None)
    if obj["kind"] == "Deployment":
        template_meta = obj["spec"]["template"]["metadata"]
        annotations = template_meta.pop("annotations")
        assert set(annotations) == {"checksum/config"}, annotations
    if obj["kind"] == "ConfigMap" and "config.yaml" in obj.get("data", {}):
        obj["data"]["config.yaml"] = yaml.safe_load(obj["data"]["config.yaml"])
    return obj


def as_kustomize_has_it(obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    if obj["kind"] == "ConfigMap" and "config.yaml" in obj.get("data", {}):
        obj["data"]["config.yaml"] = yaml.safe_load(obj["data"]["config.yaml"])
    return obj


def _by_key(objects: list[Obj]) -> dict[Key, Obj]:
    keyed = {key(obj): obj for obj in objects}
    assert len(keyed) == len(objects), "two objects of the same kind and name"
    return keyed


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


# --- the chart's copies ---------------------------------------------------------------


COPIES = {
    **{CHART / "crds" / p.name: p for p in sorted((ROOT / "crds").glob("*.yaml"))},
    CHART / "files" / "webhooks.yaml": MANIFESTS / "base" / "webhooks.yaml",
    CHART / "files" / "operator-alerts.yaml": MANIFESTS / "base" / "operator-alerts.yaml",
    CHART / "files" / "least-privilege.yaml": MANIFESTS / "base" / "least-privilege.yaml",
    **{
        CHART / "files" / "dashboards" / p.name: p
        for p in sorted((MANIFESTS / "dashboards").glob("*.yaml"))
        if p.name != "kustomization.yaml"
    },
}


@pytest.mark.parametrize("copy_", list(COPIES), ids=lambda p: str(p.relative_to(CHART)))
def test_the_chart_carries_exact_copies(copy_: Path) -> None:
    source = COPIES[copy_]
    assert copy_.is_file(), f"{copy_} is missing: cp {source} {copy_}"
    assert copy_.read_bytes() == source.read_bytes(), (
        f"{copy_.relative_to(ROOT)} differs from {source.relative_to(ROOT)}: "
        f"cp {source.relative_to(ROOT)} {copy_.relative_to(ROOT)}"
    )


def test_the_chart_carries_nothing_else() -> None:
    for folder in (CHART / "crds", CHART / "files"):
        on_disk = {p for p in folder.rglob("*") if p.is_file()}
        assert on_disk <= set(COPIES), sorted(on_disk - set(COPIES))


def test_the_chart_versions_follow_the_project() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert (chart["version"], chart["appVersion"]) == (version, version)


def test_the_schema_and_the_values_reference_are_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_chart_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- lint ---------------------------------------------------------------------------------

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cert-manager": {"webhook": {"certManager": {"enabled": True}}},
    "secure-metrics": {"metrics": {"secure": True}, "config": {"metrics": {"podSeries": False}}},
    "minimal": {
        "replicas": 3,
        "image": {
            "repository": "registry.example.com/finops-operator",
            "digest": "sha256:" + "ab" * 32,
        },
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "dashboards": {"enabled": False},
        "pdb": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "admissionPolicies": {"enabled": True},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
        "podAnnotations": {"example.com/owner": "platform"},
        "podLabels": {"example.com/team": "platform"},
        "priorityClassName": "system-cluster-critical",
        "serviceAccount": {"annotations": {"example.com/role": "finops"}},
        "verbose": True,
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraVolumes": [{"name": "token", "secret": {"secretName": "mimir-token"}}],
        "extraVolumeMounts": [{"name": "token", "mountPath": "/var/run/mimir", "readOnly": True}],
        "config": {
            "mode": "enforce",
            "exemptNamespaces": ["kube-system"],
            "prometheus": {
                "url": "https://mimir.example.com/prometheus",
                "bearerTokenFile": "/var/run/mimir/token",
            },
            "labels": {"resilio.tech/cost-center": None, "example.com/project": {"pattern": "^p$"}},
            "pricing": {"currency": "EUR", "gpuHourly": {"default": "1.80"}},
        },
    },
}


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_helm_lint_strict_passes(helm: str, tmp: Path, name: str) -> None:
    proc = run_helm(
        helm, "lint", "--strict", str(CHART), *values_args(VALUE_SETS[name], tmp), check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


# --- the default values against the kustomize manifests ------------------------------------


@needs_tool("kubectl")
@pytest.mark.parametrize(
    ("values", "folder"),
    [("defaults", MANIFESTS), ("cert-manager", MANIFESTS / "cert-manager")],
)
def test_the_chart_renders_the_objects_of_the_kustomize_manifests(
    helm: str, tmp: Path, values: str, folder: Path
) -> None:
    chart = _by_key(template(helm, tmp, VALUE_SETS[values]))
    manifests = _by_key(kustomize(folder) + kustomize(MANIFESTS / "dashboards"))
    # INTENDED["namespace"]: the one object only the manifests have.
    [namespace] = [k for k in manifests if k[1] == "Namespace"]
    assert namespace[3] == NAMESPACE
    del manifests[namespace]
    assert sorted(chart) == sorted(manifests)
    for object_key, obj in chart.items():
        ours = without_helm_additions(obj)
        theirs = as_kustomize_has_it(manifests[object_key])
        assert ours == theirs, object_key


def test_every_object_carries_helms_labels(helm: str, tmp: Path) -> None:
    for obj in template(helm, tmp):
        if obj["kind"] == "CustomResourceDefinition":
            continue  # crds/ are installed as they are
        labels = obj["metadata"]["labels"]
        assert set(HELM_LABELS) <= set(labels), key(obj)
        assert labels["app.kubernetes.io/instance"] == "finops-operator"
        assert labels["app.kubernetes.io/name"] == "finops-operator"


def _one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


def _container(objects: list[Obj]) -> Obj:
    [container] = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _config(objects: list[Obj]) -> dict[str, Any]:
    data = _one(objects, "ConfigMap", "finops-operator-config")["data"]["config.yaml"]
    loaded: dict[str, Any] = yaml.safe_load(data)
    return loaded


# --- other value sets --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minimal(helm: str, tmp: Path) -> list[Obj]:
    return template(helm, tmp, VALUE_SETS["minimal"], "gpu-finops")


CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def test_everything_namespaced_lives_in_the_release_namespace(minimal: list[Obj]) -> None:
    for obj in minimal:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        if obj["kind"].endswith("WebhookConfiguration"):
            for webhook in obj["webhooks"]:
                assert webhook["clientConfig"]["service"]["namespace"] == "gpu-finops"
            continue
        assert obj["metadata"]["namespace"] == "gpu-finops", key(obj)
    for binding in [o for o in minimal if o["kind"].endswith("RoleBinding")]:
        assert binding["subjects"][0]["namespace"] == "gpu-finops"


def test_the_least_privilege_policy_names_the_release_service_account(
    minimal: list[Obj],
) -> None:
    policy = _one(
        minimal, "ValidatingAdmissionPolicy", "finops-operator-writes-only-its-annotation"
    )
    [condition] = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:gpu-finops:finops-operator"'
    )


def test_the_configmap_policy_is_bound_in_the_release_namespace(minimal: list[Obj]) -> None:
    binding = _one(minimal, "ValidatingAdmissionPolicyBinding", "finops-operator-config-mode")
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": "gpu-finops"}
    assert _config(minimal)  # the ConfigMap it guards is the release's


def test_the_release_namespace_is_exempt_in_the_configuration_and_the_webhooks(
    minimal: list[Obj],
) -> None:
    assert _config(minimal)["exemptNamespaces"] == ["kube-system", "gpu-finops"]
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        [webhook] = _one(minimal, kind)["webhooks"]
        [names] = [
            e["values"]
            for e in webhook["namespaceSelector"]["matchExpressions"]
            if e["key"] == "kubernetes.io/metadata.name"
        ]
        assert names == ["kube-system", "gpu-finops"]


def test_the_configuration_is_the_values_config_and_valid_for_the_operator(
    minimal: list[Obj],
) -> None:
    config = _config(minimal)
    assert config["mode"] == "enforce"
    assert config["admissionPolicies"] == {"enabled": True}
    parsed = parse_config(config)
    assert parsed.admission_policies.enabled
    assert "resilio.tech/cost-center" not in parsed.labels
    assert str(parsed.pricing.gpu_price("any")) == "1.80"


def test_switches_leave_out_what_they_turn_off(minimal: list[Obj]) -> None:
    kinds = {obj["kind"] for obj in minimal}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"}
    assert not [o for o in minimal if o["metadata"].get("labels", {}).get("grafana_dashboard")]


def test_the_pod_values_reach_the_pods(minimal: list[Obj]) -> None:
    deployment = _one(minimal, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["metadata"]["annotations"]["example.com/owner"] == "platform"
    assert pod["metadata"]["labels"]["example.com/team"] == "platform"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert spec["priorityClassName"] == "system-cluster-critical"
    container = _container(minimal)
    assert container["image"] == "registry.example.com/finops-operator@sha256:" + "ab" * 32
    assert container["args"][-1] == "--verbose"
    assert {"name": "TZ", "value": "UTC"} in container["env"]
    assert {"name": "token", "mountPath": "/var/run/mimir", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert "token" in {v["name"] for v in spec["volumes"]}
    sa = _one(minimal, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"example.com/role": "finops"}


def test_a_change_of_config_rolls_the_pods(helm: str, tmp: Path) -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = _one(template(helm, tmp, values), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({"replicas": 3})
    assert checksum({}) != checksum({"config": {"mode": "enforce"}})


def test_additional_labels_select_the_monitor_and_the_rules(helm: str, tmp: Path) -> None:
    objects = template(
        helm,
        tmp,
        {
            "serviceMonitor": {"additionalLabels": {"release": "prom"}},
            "prometheusRule": {"additionalLabels": {"release": "prom", "team": "platform"}},
        },
    )
    assert _one(objects, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    labels = _one(objects, "PrometheusRule")["metadata"]["labels"]
    assert (labels["release"], labels["team"]) == ("prom", "platform")


def test_the_alerts_keep_their_own_templates(helm: str, tmp: Path) -> None:
    rule = _one(template(helm, tmp), "PrometheusRule")
    text = json.dumps(rule)
    assert "{{ $labels.pod }}" in text and "{{ $value | humanize }}" in text


@pytest.mark.parametrize("cert_manager", [False, True])
def test_secure_metrics_reach_the_configuration_the_probes_and_the_monitor(
    helm: str, tmp: Path, cert_manager: bool
) -> None:
    values = {"metrics": {"secure": True}, "webhook": {"certManager": {"enabled": cert_manager}}}
    objects = template(helm, tmp, values, "gpu-finops")
    config = _config(objects)
    assert config["metrics"] == {"secure": True}
    assert parse_config(config).metrics.secure
    container = _container(objects)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    [endpoint] = _one(objects, "ServiceMonitor")["spec"]["endpoints"]
    secret = "finops-operator-webhook-cert" if cert_manager else "finops-operator-webhook-tls"
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": secret, "key": "ca.crt"}},
        "serverName": "finops-operator-webhook.gpu-finops.svc",
    }
    # The configuration's own key has the same effect on the probes and the monitor.
    by_config = template(helm, tmp, {"config": {"metrics": {"secure": True}}})
    assert _container(by_config)["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    [endpoint] = _one(by_config, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"


def test_plain_metrics_by_default(helm: str, tmp: Path) -> None:
    objects = template(helm, tmp)
    assert "metrics" not in _config(objects)
    assert "scheme" not in _container(objects)["readinessProbe"]["httpGet"]
    [endpoint] = _one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint


def test_pdb_max_unavailable_instead(helm: str, tmp: Path) -> None:
    pdb = _one(
        template(helm, tmp, {"pdb": {"minAvailable": None, "maxUnavailable": 1}}),
        "PodDisruptionBudget",
    )
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]


KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "Issuer", "Certificate"}


@pytest.mark.parametrize("name", list(VALUE_SETS))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_kubernetes(
    helm: str, tmp: Path, name: str, version: str
) -> None:
    for obj in template(helm, tmp, VALUE_SETS[name]):
        if obj["kind"] in CRD_KINDS:
            continue  # upstream CRDs: tests/install/test_install_manifests.py checks the same
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(part) for part in err.absolute_path) or "(top level)"
            pytest.fail(f"{key(obj)} is not valid Kubernetes {version}: {path}: {err.message}")


def test_kubernetes_older_than_1_30_is_refused(helm: str, tmp: Path) -> None:
    proc = run_helm(
        helm,
        "template",
        "finops-operator",
        str(CHART),
        "--kube-version",
        "1.29.0",
        check=False,
    )
    assert proc.returncode != 0
    assert ">=1.30.0-0" in proc.stderr


# --- the schema ------------------------------------------------------------------------------

REFUSED: dict[str, tuple[dict[str, Any], list[str]]] = {
    "negative replicas": ({"replicas": -1}, ["/replicas", "minimum"]),
    "replicas as words": ({"replicas": "two"}, ["/replicas", "integer"]),
    "mode enforced": (
        {"config": {"mode": "enforced"}},
        ["/config/mode", "one of 'enforce', 'audit', 'off'"],
    ),
    "unknown config key": (
        {"config": {"pricing": {"gpuHorly": {"default": "2"}}}},
        ["/config/pricing", "gpuHorly"],
    ),
    "unknown top-level config key": ({"config": {"modes": "audit"}}, ["/config", "modes"]),
    "money as a float": (
        {"config": {"pricing": {"gpuHourly": {"NVIDIA-L4": 0.8}}}},
        ["/config/pricing/gpuHourly/NVIDIA-L4"],
    ),
    "a currency that is no code": (
        {"config": {"pricing": {"currency": "dollars"}}},
        ["/config/pricing/currency", "dollars"],
    ),
    "reports too often": (
        {"config": {"reports": {"intervalSeconds": 1}}},
        ["/config/reports/intervalSeconds", "minimum"],
    ),
    "not a namespace name": (
        {"config": {"exemptNamespaces": ["Kube_System"]}},
        ["/config/exemptNamespaces/0", "Kube_System"],
    ),
    "unknown chart key": ({"replica": 3}, ["replica"]),
    "misspelt switch": ({"serviceMonitor": {"enable": True}}, ["/serviceMonitor", "enable"]),
    "switch as a string": (
        {"serviceMonitor": {"enabled": "yes"}},
        ["/serviceMonitor/enabled", "boolean"],
    ),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "IfNotPresent"]),
    # Shorter than the preStop pause: the API server would refuse every pod.
    "grace shorter than the preStop pause": (
        {"terminationGracePeriodSeconds": 4},
        ["/terminationGracePeriodSeconds", "minimum"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_values_are_refused_naming_the_key(helm: str, tmp: Path, case: str) -> None:
    values, words = REFUSED[case]
    for command in ("template", "lint"):
        args = [command, *(["finops-operator"] if command == "template" else []), str(CHART)]
        proc = run_helm(helm, *args, *values_args(values, tmp), check=False)
        assert proc.returncode != 0, f"helm {command} accepted {values}"
        output = proc.stdout + proc.stderr
        assert "schema" in output, output
        for word in words:
            assert word in output, f"{word!r} not in: {output}"
        assert "panic" not in output and "goroutine" not in output


SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))

# Configurations the operator accepts: the schema must accept them too.
ACCEPTED: list[Any] = [
    {},
    yaml.safe_load((MANIFESTS / "base" / "config.yaml").read_text())["data"]["config.yaml"],
    Config().model_dump(mode="json", by_alias=True),
    {"mode": None, "labels": {"resilio.tech/team": None, "x.io/y": {"values": ["a"]}}},
    {
        "pricing": {
            "gpuHourly": {"default": 3},
            "tokensPer1k": {"m": "0.1", "n": {"input": 1, "output": "2"}},
        }
    },
    {
        "gpuMetrics": {
            "utilizationScale": 1,
            "migUtilizationScale": "100",
            "migUtilizationMetric": "",
        }
    },
    {"exemptNamespaces": [], "policyReports": {"api": "off", "debounceSeconds": 0.5}},
]
# Configurations the operator refuses that JSON Schema can recognise.
REFUSED_CONFIGS: list[Any] = [
    {"mode": "enforced"},
    {"pricing": {"gpuHourly": {"default": 2.5}}},
    {"pricing": {"gpuHourly": {"default": "-1"}}},
    {"pricing": {"tokensPer1k": {"m": {"input": "1"}}}},
    {"pricing": {"sharedSplit": "fair"}},
    {"gpuMetrics": {"preset": "dcgm"}},
    {"gpuMetrics": {"utilizationScale": 0}},
    {"llmGateway": {"spendMetric": "not a metric"}},
    {"prometheus": {"url": "ftp://x"}},
    {"prometheus": {"rulesCheckSeconds": 0}},
    {"labels": {"a": {"regex": "x"}}},
    {"gpuResources": []},
    {"admissionPolicies": {"enabled": "maybe"}},
    {"policyReports": {"api": "v1"}},
    {"ruleLabels": {"release": 1}},
]


def _schema_accepts(config: Any) -> bool:
    values = {"config": yaml.safe_load(config) if isinstance(config, str) else config}
    errors = list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(values))
    return not errors


@pytest.mark.parametrize("config", ACCEPTED, ids=[f"accepted{i}" for i in range(len(ACCEPTED))])
def test_the_schema_accepts_what_the_operator_accepts(config: Any) -> None:
    parse_config(yaml.safe_load(config) if isinstance(config, str) else config)
    assert _schema_accepts(config)


@pytest.mark.parametrize("config", REFUSED_CONFIGS, ids=str)
def test_the_schema_refuses_what_the_operator_refuses(config: Any) -> None:
    with pytest.raises(ConfigError):
        parse_config(config)
    assert not _schema_accepts(config)


def test_the_default_values_validate_against_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(values)
    parse_config(values["config"])
