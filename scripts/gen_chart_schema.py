"""Writes the Helm chart's values.schema.json and its values reference, docs/helm.md.

The chart's own keys (image, replicas, serviceMonitor, ...) are described here, once:
their types for the schema and their meanings for the reference table, whose
defaults come from the chart's values.yaml. `config` is the operator's configuration
file, so its schema is generated from the pydantic models in
src/finops_operator/domain/config.py, the same models that validate the file when
the operator starts: a key the operator does not know, a wrong type or a mode such
as `enforced` is refused by `helm install` already, with the key's path. (What JSON
Schema cannot say, such as a regular expression that does not compile, is still
refused by the operator at start.)

`--check` exits 1 when either file is out of date (tests/install/test_helm_chart.py
runs it).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from finops_operator.domain import config as cfg
from finops_operator.domain import names

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "finops-operator"
SCHEMA = CHART / "values.schema.json"
REFERENCE = ROOT / "docs" / "helm.md"

STRING: dict[str, Any] = {"type": "string"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
OBJECT: dict[str, Any] = {"type": "object"}  # a Kubernetes structure, passed through
LIST: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
LABELS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}


def strict(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with exactly these keys (a misspelled key is an error, not ignored)."""
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


def key(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description}


COUNT_OR_PERCENT: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+%$"},
        {"type": "null"},
    ]
}

# The chart's own keys. `config` is added from the operator's models.
CHART_KEYS: dict[str, Any] = {
    "image": strict(
        {
            "repository": key(STRING | {"minLength": 1}, "Image repository of the operator."),
            "tag": key(STRING, "Image tag; empty means the chart's appVersion."),
            "digest": key(
                {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
                "Image digest (`sha256:...`); when set the image is pulled by digest.",
            ),
            "pullPolicy": key(
                {"enum": ["Always", "IfNotPresent", "Never"]}, "The container's imagePullPolicy."
            ),
        },
        description="The operator's image (built from the repository's Dockerfile).",
    ),
    "imagePullSecrets": key(LIST, "Secrets for pulling the image (`[{name: ...}]`)."),
    "replicas": key(
        {"type": "integer", "minimum": 0},
        "Operator replicas. All serve admission and /metrics; the Lease holder writes. "
        "Keep two or more: the validating webhook fails closed.",
    ),
    "revisionHistoryLimit": key({"type": "integer", "minimum": 0}, "Old ReplicaSets kept."),
    "resources": key(OBJECT, "The operator container's requests and limits."),
    "pdb": strict(
        {
            "enabled": key(BOOLEAN, "Render the PodDisruptionBudget."),
            "minAvailable": key(COUNT_OR_PERCENT, "Replicas kept through voluntary disruptions."),
            "maxUnavailable": key(
                COUNT_OR_PERCENT, "Instead of minAvailable (set minAvailable to null then)."
            ),
        },
        description="The PodDisruptionBudget.",
    ),
    "serviceAccount": strict(
        {"annotations": key(LABELS, "Annotations of the operator's ServiceAccount.")},
        description="The operator's ServiceAccount (always finops-operator).",
    ),
    "podLabels": key(LABELS, "More labels on the operator's pods."),
    "podAnnotations": key(LABELS, "More annotations on the operator's pods."),
    "priorityClassName": key(STRING, "The pods' priorityClassName."),
    "hostAliases": key(
        {
            "type": "array",
            "items": strict(
                {
                    "ip": key(STRING | {"minLength": 1}, "The address."),
                    "hostnames": key(
                        {"type": "array", "items": STRING | {"minLength": 1}},
                        "Names resolved to it.",
                    ),
                },
                required=["ip", "hostnames"],
            ),
        },
        "Entries of the pods' /etc/hosts (`[{ip, hostnames}]`), e.g. the API server's "
        "names where no cluster DNS resolves `kubernetes.default.svc`.",
    ),
    "nodeSelector": key(LABELS, "The pods' nodeSelector."),
    "tolerations": key(LIST, "The pods' tolerations."),
    "affinity": key(OBJECT, "The pods' affinity; the default spreads replicas over nodes."),
    "topologySpreadConstraints": key(
        LIST, "The pods' topologySpreadConstraints; the default spreads over nodes and zones."
    ),
    "terminationGracePeriodSeconds": key(
        {"type": "integer", "minimum": 5},
        "Seconds to stop; at least the 5 s the pod keeps serving before its SIGTERM (preStop), "
        "and 10 or more leave time for the 5 s drain after it (docs/install.md).",
    ),
    "extraEnv": key(LIST, "More environment variables of the operator container."),
    "extraVolumes": key(LIST, "More volumes of the operator's pods."),
    "extraVolumeMounts": key(
        LIST, "More mounts (e.g. for config.prometheus.bearerTokenFile or caFile)."
    ),
    "verbose": key(BOOLEAN, "Debug logging (`run --verbose`)."),
    "networkPolicy": strict(
        {"enabled": key(BOOLEAN, "Render the NetworkPolicy.")},
        description="Ingress to the operator's pods on 9443 and 8080 only.",
    ),
    "webhook": strict(
        {
            "certManager": strict(
                {
                    "enabled": key(
                        BOOLEAN,
                        "true: cert-manager issues the webhook certificate (self-signed "
                        "Issuer) and injects its CA; false: the operator manages it in the "
                        "Secret finops-operator-webhook-tls.",
                    )
                }
            )
        },
        description="The admission webhooks' serving certificate.",
    ),
    "metrics": strict(
        {
            "secure": key(
                BOOLEAN,
                "Serve /metrics over HTTPS behind the TokenReview/SubjectAccessReview check "
                "(sets `config.metrics.secure`; the probes and the ServiceMonitor follow).",
            )
        },
        description="The operator's /metrics.",
    ),
    "serviceMonitor": strict(
        {
            "enabled": key(BOOLEAN, "Render the ServiceMonitor (needs the Prometheus Operator)."),
            "additionalLabels": key(
                LABELS, "Labels your Prometheus' serviceMonitorSelector selects."
            ),
            "interval": key(STRING | {"pattern": "^[0-9]+(ms|s|m|h)$"}, "Scrape interval."),
            "scrapeTimeout": key(STRING | {"pattern": "^[0-9]+(ms|s|m|h)$"}, "Scrape timeout."),
        },
        description="The ServiceMonitor of the operator's /metrics.",
    ),
    "prometheusRule": strict(
        {
            "enabled": key(BOOLEAN, "Render the PrometheusRule finops-operator-health."),
            "additionalLabels": key(LABELS, "Labels your Prometheus' ruleSelector selects."),
        },
        description="The alerts on the operator's own health.",
    ),
    "dashboards": strict(
        {
            "enabled": key(BOOLEAN, "Render the dashboards' ConfigMaps."),
            "folder": key(STRING, "Grafana folder (the `grafana_folder` annotation)."),
        },
        description='The Grafana dashboards, labelled `grafana_dashboard: "1"`.',
    ),
    "admissionPolicies": strict(
        {
            "enabled": key(
                BOOLEAN,
                "Sets `config.admissionPolicies.enabled`: the operator keeps "
                "ValidatingAdmissionPolicies in step with the configuration (Kubernetes 1.30+).",
            )
        },
        description="Admission policies the API server evaluates itself.",
    ),
}

NULL: dict[str, Any] = {"type": "null"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null: in the file, `key: null` means the key's default."""
    options = schema.get("anyOf")
    if options is not None and NULL in options:
        return schema
    described: dict[str, Any] = {k: schema[k] for k in ("description", "default") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in described}
    return {"anyOf": [inner, NULL], **described}


def _tidy(node: Any) -> Any:
    """Without pydantic's generated titles: the descriptions say more."""
    if isinstance(node, dict):
        return {k: _tidy(v) for k, v in node.items() if k != "title" or isinstance(v, dict)}
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def config_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema of `config` and the definitions it refers to (for the document's root)."""
    schema = _tidy(cfg.Config.model_json_schema(by_alias=True, mode="validation"))
    definitions: dict[str, Any] = schema.pop("$defs")
    for model in [schema, *definitions.values()]:
        for name, prop in model.get("properties", {}).items():
            model["properties"][name] = _nullable(prop)
    # `labels: {key: null}` drops a default rule (Config._merge_over_defaults).
    labels = schema["properties"]["labels"]["anyOf"][0]
    labels["additionalProperties"] = _nullable(labels["additionalProperties"])
    # What the models' validators check, as far as JSON Schema can say it.
    _pattern(schema, "exemptNamespaces", names.DNS_LABEL.strip("^$"), items=True)
    _pattern(definitions["PricingConfig"], "currency", "^[A-Z]{3}$")
    _pattern(definitions["PrometheusConfig"], "url", r"^https?://[^/\s]+")
    metric = f"^{cfg._METRIC_NAME}$"
    for name in ("inputTokensMetric", "outputTokensMetric", "spendMetric"):
        _pattern(definitions["LlmGatewayConfig"], name, metric)
    gpu_resources = schema["properties"]["gpuResources"]["anyOf"][0]
    gpu_resources["minItems"] = 1
    schema["description"] = (
        "The operator's configuration file (docs/configuration.md); checked against the "
        "operator's own configuration model."
    )
    return schema, definitions


def _pattern(model: dict[str, Any], name: str, pattern: str, items: bool = False) -> None:
    prop = model["properties"][name]["anyOf"][0]
    target = prop["items"] if items else prop
    assert target.get("type") == "string", (name, target)
    target["pattern"] = pattern if pattern.startswith("^") else f"^(?:{pattern})$"


def schema() -> dict[str, Any]:
    config, definitions = config_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "finops-operator chart values",
        "description": "Generated by scripts/gen_chart_schema.py; do not edit.",
        **strict({**copy.deepcopy(CHART_KEYS), "config": config}),
        "$defs": definitions,
    }


def render_schema() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


# --- docs/helm.md ---------------------------------------------------------------------

INTRO = """\
# Helm chart values

<!-- Generated by scripts/gen_chart_schema.py from the chart's values.yaml and the
     descriptions in that script; do not edit. -->

`charts/finops-operator` installs what `kubectl apply -k manifests/` installs (the
README's "Install on a cluster"); its default values render the same objects, which
tests/install/test_helm_chart.py checks. `values.schema.json` refuses unknown keys and
wrong types, and checks `config` against the operator's configuration model, so
`helm install` and `helm upgrade` stop before a bad configuration reaches the cluster.

```sh
helm install finops-operator charts/finops-operator -n finops-system --create-namespace \\
  --set image.repository=registry.example.com/finops-operator
```

What differs from `manifests/`, on purpose:

- the chart does not create the namespace (`--create-namespace` does; label it for Pod
  Security `restricted` yourself: `kubectl label ns finops-system
  pod-security.kubernetes.io/enforce=restricted`);
- objects carry Helm's labels (`helm.sh/chart`, `app.kubernetes.io/instance`,
  `app.kubernetes.io/version`, `app.kubernetes.io/managed-by`); selectors do not;
- the pods carry a `checksum/config` annotation, so a change of `config` rolls them
  (the operator reads its configuration at start);
- everything namespaced lives in the release's namespace, which is always added to
  `config.exemptNamespaces` and to the webhooks' namespaceSelector, and is the
  namespace of the ServiceAccount the least-privilege policy names;
- the dashboards (`manifests/dashboards/`, applied separately there) are part of it.

The objects keep their names (`finops-operator`, ...) whatever the release is called:
the operator finds its Lease, webhook configurations and certificate Secret by name, so
install one release per cluster. The CRDs are in the chart's `crds/`: Helm installs
them with the first `helm install` and never upgrades or deletes them; after an
upgrade of the chart, `kubectl apply -f charts/finops-operator/crds/`.

## How the chart stays in step with `manifests/`

- The CRDs (`crds/`), the webhook configurations, the least-privilege policy and
  NetworkPolicy, the health alerts and the dashboards (`files/`) are byte-identical
  copies of `crds/`, `manifests/base/webhooks.yaml`, `manifests/base/least-privilege.yaml`,
  `manifests/base/operator-alerts.yaml` and `manifests/dashboards/` (the alerts and
  dashboards hold Prometheus and Grafana `{{ ... }}` templates, so the chart reads them
  as files instead of templating them). `scripts/gen_dashboards.py` writes both
  copies; a test fails when any copy differs.
- The rest (RBAC, Deployment, Services, ServiceMonitor, ConfigMap) is templated and
  compared, object by object, with `kubectl kustomize` of `manifests/`, with the
  default values and with `webhook.certManager.enabled` (against
  `manifests/cert-manager/`). Equal RBAC means the RBAC checks derived from the code
  (tests/install/test_install_manifests.py) hold for the chart too.
- `values.schema.json` is generated from the configuration's pydantic models, so a key
  the operator gains is a key the chart accepts.

Helm v4 for the tests is built from its Go module by `scripts/build-helm.sh`
(pinned in `e2e/helm/go.mod`, cached in `.cache/helm/`); tests/e2e/test_helm_chart.py
installs, upgrades and uninstalls the chart on the e2e control plane.

## Values

"""


def _flatten(schema_node: dict[str, Any], values: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    rows: list[tuple[str, Any, Any]] = []
    for name, prop in schema_node["properties"].items():
        path = f"{prefix}{name}"
        value = values.get(name) if isinstance(values, dict) else None
        if prop.get("additionalProperties") is False and "properties" in prop:
            rows += _flatten(prop, value, f"{path}.")
        else:
            rows.append((path, prop, value))
    return rows


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_type(option) for option in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return "list"
    if kind == "object" and "additionalProperties" in prop:
        return "map of strings"
    return str(kind)


def render_reference() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for path, prop, value in _flatten(strict(CHART_KEYS), values, ""):
        default = f"`{json.dumps(value, separators=(', ', ': '))}`"
        if len(default) > 60:
            default = "see values.yaml"
        description = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_type(prop)} | {default} | {description} |")
    rows.append(
        "| `config` | mapping | the configuration of `manifests/base/config.yaml` | The "
        "operator's configuration file: every key in [configuration.md](configuration.md). "
        "`key: null` or a key left out means the operator's default. |"
    )
    return INTRO + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = 0
    for target, text in ((SCHEMA, render_schema()), (REFERENCE, render_reference())):
        if args.check:
            current = target.read_text(encoding="utf-8") if target.exists() else ""
            if current != text:
                print(f"{target} is out of date: run scripts/gen_chart_schema.py", file=sys.stderr)
                stale = 1
        else:
            target.write_text(text, encoding="utf-8")
    return stale


if __name__ == "__main__":
    sys.exit(main())
