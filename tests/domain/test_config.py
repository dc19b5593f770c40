"""The configuration file: defaults, merging, and errors that name the bad key."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from finops_operator.adapters.config_file import CONFIG_ENV, load_config
from finops_operator.domain.config import DEFAULT_LABEL_RULES, Config, LabelRule, parse_config
from finops_operator.errors import ConfigError
from tests.support.paths import ROOT

TEAM = "resilio.tech/team"
ENV = "resilio.tech/environment"


def test_defaults_are_the_design() -> None:
    config = Config()
    assert config.mode == "enforce"
    assert config.exempt_namespaces == ("kube-system", "finops-system")
    assert list(config.labels) == [
        "resilio.tech/team",
        "resilio.tech/feature",
        "resilio.tech/environment",
        "resilio.tech/workload-type",
        "resilio.tech/cost-center",
    ]
    assert config.labels[ENV].values == ("production", "staging", "development")
    assert config.gpu_resources == (
        "nvidia.com/gpu",
        "nvidia.com/gpu.shared",
        "nvidia.com/mig-*",
        "amd.com/gpu",
        "gpu.intel.com/i915",
        "gpu.intel.com/xe",
    )
    assert config.prometheus.url == "http://prometheus-operated.monitoring.svc:9090"
    assert config.pricing.currency == "USD"
    assert config.pricing.gpu_price("anything") == Decimal("2.00")
    assert config.pricing.token_price("anything") == Decimal("0.002")
    assert config.pricing.shared_monthly == Decimal(0)
    assert config.pricing.shared_split == "proportional"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="an empty file"),
        pytest.param({}, id="an empty mapping"),
        pytest.param({"mode": None, "labels": None, "pricing": None}, id="keys left empty"),
    ],
)
def test_nothing_given_means_the_defaults(data: Any) -> None:
    assert parse_config(data) == Config()


def test_the_design_example_is_valid() -> None:
    example = """
mode: enforce
exemptNamespaces: [kube-system, finops-system]
labels:
  resilio.tech/team: {pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'}
  resilio.tech/environment: {values: [production, staging, development]}
gpuResources: [nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*, amd.com/gpu]
prometheus:
  url: http://prometheus-operated.monitoring.svc:9090
  headers: {}
  bearerTokenFile: null
  caFile: null
pricing:
  currency: USD
  gpuHourly: {default: "2.00", NVIDIA-H100-80GB-HBM3: "4.00"}
  tokensPer1k: {default: "0.002", gpt-4o: "0.01"}
  sharedMonthly: "0"
  sharedSplit: proportional
"""
    config = parse_config(yaml.safe_load(example))
    assert config.labels == Config().labels
    assert config.pricing.gpu_price("NVIDIA-H100-80GB-HBM3") == Decimal("4.00")
    assert config.pricing.token_price("gpt-4o") == Decimal("0.01")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(
            {TEAM: {"values": ["search", "ads"]}},
            {**DEFAULT_LABEL_RULES, TEAM: LabelRule(values=("search", "ads"))},
            id="a rule given replaces the default rule of its key",
        ),
        pytest.param(
            {"example.com/project": {}},
            {**DEFAULT_LABEL_RULES, "example.com/project": LabelRule()},
            id="a new key adds a required label",
        ),
        pytest.param(
            {ENV: None},
            {k: v for k, v in DEFAULT_LABEL_RULES.items() if k != ENV},
            id="a key set to null drops that default",
        ),
        pytest.param(
            {"example.com/unknown": None},
            dict(DEFAULT_LABEL_RULES),
            id="dropping a key that is not there is harmless",
        ),
    ],
)
def test_labels_merge_over_the_defaults(
    labels: dict[str, Any], expected: dict[str, LabelRule]
) -> None:
    assert parse_config({"labels": labels}).labels == expected


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param({"pricing": {"gpuHorly": {}}}, "pricing.gpuHorly: unknown key", id="a typo"),
        pytest.param({"mdoe": "audit"}, "mdoe: unknown key", id="a typo at the top level"),
        pytest.param(
            {"pricing": {"gpu_hourly": {}}},
            "unknown key 'gpu_hourly': in the file it is spelled 'gpuHourly'",
            id="the Python spelling of a key is refused",
        ),
        pytest.param({"mode": "strict"}, "mode: Input should be", id="a mode that does not exist"),
        pytest.param(
            {"pricing": {"gpuHourly": {"H100": 4.5}}},
            "pricing.gpuHourly.H100: money must be written as a string",
            id="money as a float is refused",
        ),
        pytest.param(
            {"pricing": {"sharedMonthly": "lots"}},
            "pricing.sharedMonthly: 'lots' is not an amount of money",
            id="money that is not a number",
        ),
        pytest.param(
            {"pricing": {"sharedMonthly": "-5"}},
            "pricing.sharedMonthly: '-5' must be a finite amount from 0 to 1000000000000",
            id="negative money",
        ),
        pytest.param(
            {"pricing": {"gpuHourly": {"default": "1e400"}}},
            "pricing.gpuHourly.default: '1e400' must be a finite amount from 0 to 1000000000000",
            id="money beyond 1e12 (issue 13)",
        ),
        pytest.param(
            {"pricing": {"sharedMonthly": 10**5000}},
            "pricing.sharedMonthly: a number of more than 40 digits must be a finite amount",
            id="an integer of 5000 digits",
        ),
        pytest.param(
            {"pricing": {"sharedMonthly": "NaN"}},
            "is not an amount of money",
            id="money that is not a number at all",
        ),
        pytest.param(
            {"pricing": {"sharedMonthly": True}},
            "True is not an amount of money",
            id="money as a boolean",
        ),
        pytest.param(
            {"pricing": {"currency": "dollars"}},
            "pricing.currency: 'dollars' is not an ISO 4217 currency code",
            id="a currency that is not a code",
        ),
        pytest.param(
            {"labels": {TEAM: {"pattern": "([a-z"}}},
            "labels['resilio.tech/team'].pattern: invalid regular expression",
            id="an invalid regular expression",
        ),
        pytest.param(
            {"labels": {TEAM: {"values": []}}},
            "labels['resilio.tech/team'].values: an empty list of values admits nothing",
            id="an empty list of values",
        ),
        pytest.param(
            {"labels": {TEAM: {"patern": "x"}}},
            "labels['resilio.tech/team'].patern: unknown key",
            id="a typo inside a rule",
        ),
        pytest.param(
            {"labels": {"Team Name": {}}},
            "labels: 'Team Name' is not a valid label key",
            id="a label key Kubernetes would refuse",
        ),
        pytest.param(
            {"labels": {"-bad.example/team": {}}},
            "the prefix must be a DNS subdomain",
            id="a label key with a bad prefix",
        ),
        pytest.param(
            {"exemptNamespaces": ["kube-system", "Not_A_Namespace"]},
            "exemptNamespaces: 'Not_A_Namespace' is not a namespace name",
            id="a namespace that cannot exist",
        ),
        pytest.param(
            {"exemptNamespaces": "kube-system"},
            "exemptNamespaces: Input should be a valid tuple",
            id="a namespace list written as one string",
        ),
        pytest.param(
            {"gpuResources": []},
            "gpuResources: at least one GPU resource name is needed",
            id="no GPU resources at all",
        ),
        pytest.param(
            {"prometheus": {"url": "prometheus:9090"}},
            "prometheus.url: 'prometheus:9090' is not an http:// or https:// URL",
            id="a Prometheus URL without a scheme",
        ),
        pytest.param(
            {"prometheus": {"headers": {"X-Scope-OrgID": 42}}},
            "prometheus.headers.X-Scope-OrgID: Input should be a valid string",
            id="a header value that is a number",
        ),
        pytest.param(
            {"cluster": {"replicaLabels": ["prometheus_replica", "cluster"]}},
            "cluster: 'cluster' is both the cluster label and a replica label",
            id="the cluster label as a replica label (every cluster would merge)",
        ),
        pytest.param(
            {"cluster": {"label": "replica"}},
            "cluster: 'replica' is both the cluster label and a replica label",
            id="a default replica label as the cluster label",
        ),
        pytest.param(
            {"cluster": {"label": "namespace"}},
            "cluster.label: 'namespace' is a label the cost queries group by",
            id="the cluster label named like a label the queries keep",
        ),
        pytest.param(
            {"cluster": {"replicaLabels": ["instance"]}},
            "cluster.replicaLabels: 'instance' is a label the cost queries group by",
            id="a replica label the gateway replicas differ by (their tokens are summed)",
        ),
    ],
)
def test_errors_name_the_bad_key(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "finops.yaml")
    assert str(caught.value).startswith("finops.yaml: invalid configuration:\n")
    assert named in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [pytest.param(["mode: audit"], id="a list"), pytest.param("audit", id="a string")],
)
def test_the_top_level_must_be_a_mapping(data: Any) -> None:
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        parse_config(data, "finops.yaml")


@pytest.mark.parametrize(
    ("written", "amount"),
    [
        pytest.param('"2.50"', Decimal("2.50"), id="a quoted decimal keeps its digits"),
        pytest.param("3", Decimal(3), id="a whole number is exact and allowed"),
        pytest.param('"0.0000001"', Decimal("0.0000001"), id="a tiny price is not rounded"),
    ],
)
def test_money_is_decimal(written: str, amount: Decimal, tmp_path: Path) -> None:
    file = tmp_path / "finops.yaml"
    file.write_text(f"pricing:\n  sharedMonthly: {written}\n")
    assert load_config(file).pricing.shared_monthly == amount


def test_gpu_prices_keep_the_default_when_a_file_lists_only_models() -> None:
    pricing = parse_config({"pricing": {"gpuHourly": {"NVIDIA-H100-80GB-HBM3": "4.00"}}}).pricing
    assert pricing.gpu_price("NVIDIA-H100-80GB-HBM3") == Decimal("4.00")
    assert pricing.gpu_price("NVIDIA-A100-SXM4-80GB") == Decimal("2.00")


def test_python_code_may_use_field_names() -> None:
    assert Config(exempt_namespaces=("a",)).exempt_namespaces == ("a",)


def test_prometheus_url_loses_its_trailing_slash() -> None:
    config = parse_config({"prometheus": {"url": "https://mimir.example/prometheus/"}})
    assert config.prometheus.url == "https://mimir.example/prometheus"


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    file = tmp_path / "finops.yaml"
    file.write_text("mode: audit\nexemptNamespaces: []\n")
    config = load_config(file)
    assert config.mode == "audit"
    assert config.exempt_namespaces == ()


def test_load_config_reads_finops_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "finops.yaml"
    file.write_text("mode: 'off'\n")
    monkeypatch.setenv(CONFIG_ENV, str(file))
    assert load_config().mode == "off"


def test_an_explicit_path_wins_over_finops_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text("mode: 'off'\n")
    arg_file = tmp_path / "arg.yaml"
    arg_file.write_text("mode: audit\n")
    monkeypatch.setenv(CONFIG_ENV, str(env_file))
    assert load_config(arg_file).mode == "audit"


@pytest.mark.parametrize("value", [pytest.param(None, id="unset"), pytest.param("", id="empty")])
def test_without_a_file_the_default_is_embedded(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(CONFIG_ENV, raising=False)
    else:
        monkeypatch.setenv(CONFIG_ENV, value)
    assert load_config() == Config()


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the configuration file"):
        load_config(tmp_path / "nope.yaml")


def test_a_file_that_is_not_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("mode: [audit\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML") as caught:
        load_config(file)
    assert "\n" not in str(caught.value)


def test_the_configuration_reference_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_example_in_the_configuration_reference_is_valid() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example), "docs/configuration.md")
    assert config.mode == "audit"
    assert "resilio.tech/cost-center" not in config.labels
    assert config.pricing.gpu_price("NVIDIA-A100-SXM4-80GB") == Decimal("1.80")


def test_admission_policies_refuse_patterns_re2_cannot_run_naming_the_key() -> None:
    data = {
        "admissionPolicies": {"enabled": True},
        "labels": {"resilio.tech/team": {"pattern": r"^(?!test-)[a-z-]+$"}},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, "config.yaml")
    assert "labels['resilio.tech/team'].pattern" in str(err.value)
    assert "negative lookahead" in str(err.value)
    # Without admission policies the webhook runs Python's re: the same pattern is fine.
    data["admissionPolicies"] = {"enabled": False}
    assert parse_config(data).labels["resilio.tech/team"].pattern == r"^(?!test-)[a-z-]+$"


# --- issue 9: configuration for real stacks ------------------------------------------


def test_real_stack_defaults() -> None:
    config = Config()
    assert config.rule_labels == {"release": "kube-prometheus-stack"}
    source = config.gpu_metrics.source()
    assert (source.metric, source.scale) == ("DCGM_FI_DEV_GPU_UTIL", Decimal(100))
    assert (source.namespace_label, source.pod_label) == ("exported_namespace", "exported_pod")
    assert (source.mig_metric, source.mig_scale) == ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", Decimal(1))
    assert config.llm_gateway.team_label == "team_alias"
    assert config.llm_gateway.cost_source == "token_prices"


def test_explicit_gpu_metric_keys_override_the_preset() -> None:
    config = parse_config(
        {
            "gpuMetrics": {
                "preset": "dcgm-exporter",
                "podLabel": "pod_name",
                "migUtilizationMetric": "",
            }
        }
    )
    source = config.gpu_metrics.source()
    assert (source.namespace_label, source.pod_label) == ("namespace", "pod_name")
    assert source.mig_metric is None


def test_token_prices_take_one_amount_or_input_and_output() -> None:
    config = parse_config(
        {
            "pricing": {
                "tokensPer1k": {"gpt-4o": {"input": "0.0025", "output": "0.01"}, "small": "0.1"}
            }
        }
    )
    pricing = config.pricing
    assert pricing.token_price("gpt-4o", "input") == Decimal("0.0025")
    assert pricing.token_price("gpt-4o", "output") == Decimal("0.01")
    assert pricing.token_price("small", "input") == pricing.token_price("small", "output")
    assert pricing.token_price("unlisted", "output") == Decimal("0.002")  # the default stays


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"ruleLabels": {"bad key!": "x"}}, "ruleLabels: 'bad key!' is not a valid label key"),
        ({"ruleLabels": {"release": "not a value"}}, "is not a Kubernetes label value"),
        (
            {"ruleLabels": {"app.kubernetes.io/managed-by": "me"}},
            "ruleLabels: 'app.kubernetes.io/managed-by' is set by the operator itself",
        ),
        ({"gpuMetrics": {"preset": "nvidia"}}, "gpuMetrics.preset: Input should be"),
        ({"gpuMetrics": {"utilizationScale": 0}}, "gpuMetrics.utilizationScale: 0 must be above 0"),
        ({"gpuMetrics": {"utilizationScale": "lots"}}, "'lots' is not a number"),
        (
            {"gpuMetrics": {"podLabel": "exported-pod"}},
            "gpuMetrics.podLabel: 'exported-pod' is not",
        ),
        ({"gpuMetrics": {"utilizationMetric": "dcgm util"}}, "is not a Prometheus metric name"),
        (
            {"gpuMetrics": {"migUtilizationMetric": "1mig"}},
            "gpuMetrics.migUtilizationMetric: '1mig' is not a Prometheus metric name",
        ),
        (
            {"llmGateway": {"teamLabel": "team_id"}},
            "llmGateway.teamLabel: 'team_id' is not a LiteLLM team label",
        ),
        ({"llmGateway": {"preset": "envoy"}}, "llmGateway.preset: Input should be"),
        (
            {"llmGateway": {"preset": "otel-genai", "teamLabel": "x-team"}},
            "llmGateway.teamLabel: 'x-team' is not a Prometheus label name",
        ),
        (
            {"llmGateway": {"tokenUsageMetric": "gen_ai.client.token.usage"}},
            "is not a Prometheus metric name",
        ),
        (
            {"llmGateway": {"preset": "otel-genai", "costSource": "spend_metric"}},
            "the otel-genai preset reports tokens only",
        ),
        (
            {"selfHostedModels": {"promptTokensMetric": "vllm prompt"}},
            "selfHostedModels.promptTokensMetric: 'vllm prompt' is not a Prometheus metric",
        ),
        (
            {"selfHostedModels": {"modelLabel": "model-name"}},
            "selfHostedModels.modelLabel: 'model-name' is not a Prometheus label name",
        ),
        ({"selfHostedModels": {"chargeConsumers": "maybe"}}, "selfHostedModels.chargeConsumers"),
        ({"llmGateway": {"costSource": "litellm"}}, "llmGateway.costSource: Input should be"),
        (
            {"llmGateway": {"costSource": "spend_metric"}, "pricing": {"currency": "EUR"}},
            "spend_metric is LiteLLM's spend in USD",
        ),
        (
            {"pricing": {"tokensPer1k": {"gpt-4o": {"input": "0.0025"}}}},
            "pricing.tokensPer1k.gpt-4o.output: Field required",
        ),
        (
            {"pricing": {"tokensPer1k": {"gpt-4o": {"input": 0.0025, "output": "1"}}}},
            "pricing.tokensPer1k.gpt-4o.input: money must be written as a string",
        ),
    ],
)
def test_real_stack_keys_refuse_bad_values_naming_the_key(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "finops.yaml")
    assert named in str(caught.value)
