"""The shared webhook Secret and the caBundle patch, as plain data, and webhook_tls reading
and writing them against the in-memory API."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509

from finops_devtools.devcluster.reviews import workload
from finops_operator.adapters.certificates import self_signed, service_hostnames
from finops_operator.controllers.webhook_tls import (
    first_shared_certificate,
    inject_ca_bundle,
    shared_certificate,
)
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, LabelRule
from finops_operator.domain.policies.admission_policy import GPU_CONDITION, VALIDATING_CONDITION
from finops_operator.domain.policies.webhook_conditions import (
    NAME_LABEL,
    conditions_patch,
    webhook_settings,
)
from finops_operator.domain.webhook_certificate import (
    ca_bundle_patch,
    pair_from_secret,
    secret_body,
)
from finops_operator.errors import KubeError
from tests.domain.policies.test_webhook_conditions import condition_true
from tests.support.fakes import FakeKube

DEFAULTS = webhook_settings(Config(), "finops-system")


def test_a_secret_round_trips_the_certificate_key_and_ca() -> None:
    cert, key = self_signed(service_hostnames("finops-system"))
    secret = secret_body("finops-system", "finops-operator-webhook-tls", cert, key)
    assert secret["type"] == "kubernetes.io/tls"
    assert pair_from_secret(secret) == (cert, key, cert)


def test_the_certificate_names_the_webhook_service_in_its_namespace() -> None:
    cert, _ = self_signed(service_hostnames("platform-finops"))
    names = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "finops-operator-webhook.platform-finops.svc" in names.value.get_values_for_type(
        x509.DNSName
    )


def test_a_secret_without_a_key_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"Secret broken has no tls\.key"):
        pair_from_secret({"metadata": {"name": "broken"}, "data": {"tls.crt": "eA=="}})


def test_the_ca_is_added_to_every_webhook_that_lacks_it_and_only_those() -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    bundle = base64.b64encode(ca).decode()
    configuration = {
        "webhooks": [
            {"name": "a", "clientConfig": {"service": {"name": "s"}}},
            {"name": "b", "clientConfig": {"caBundle": bundle}},
            {"name": "c", "clientConfig": {"caBundle": "b2xk"}},
        ]
    }
    assert ca_bundle_patch(configuration, ca) == [
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": bundle},
        {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": bundle},
    ]


# --- against the in-memory API -----------------------------------------------------------

SECRET = "finops-operator-webhook-tls"


class Issuer:
    """A certificate issuer that counts its calls; the PEM is a recognisable fake."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []

    def __call__(self, namespace: str) -> tuple[bytes, bytes]:
        self.namespaces.append(namespace)
        return b"cert-" + namespace.encode(), b"key-" + namespace.encode()


async def test_a_missing_secret_is_created_from_a_new_certificate() -> None:
    kube, issue = FakeKube(), Issuer()
    pair = await shared_certificate(kube, "finops-system", SECRET, issue)
    assert pair == (b"cert-finops-system", b"key-finops-system", b"cert-finops-system")
    assert issue.namespaces == ["finops-system"]
    assert kube.verbs() == ["get_secret", "create_secret"]
    assert pair_from_secret(kube.secrets[("finops-system", SECRET)]) == pair


async def test_an_existing_secret_is_used_as_it_is() -> None:
    kube, issue = FakeKube(), Issuer()
    kube.put_secret("finops-system", secret_body("finops-system", SECRET, b"theirs", b"k"))
    assert await shared_certificate(kube, "finops-system", SECRET, issue) == (
        b"theirs",
        b"k",
        b"theirs",
    )
    assert issue.namespaces == [] and kube.writes == []


async def test_a_replica_that_loses_the_race_serves_the_winners_certificate() -> None:
    kube, issue = FakeKube(), Issuer()
    original = kube.create_secret

    async def winner_first(namespace: str, secret: dict[str, Any]) -> None:
        kube.put_secret(namespace, secret_body(namespace, SECRET, b"winner", b"wk"))
        await original(namespace, secret)

    kube.create_secret = winner_first  # type: ignore[method-assign]
    pair = await shared_certificate(kube, "finops-system", SECRET, issue)
    assert pair == (b"winner", b"wk", b"winner")
    assert kube.verbs() == ["get_secret", "create_secret", "get_secret"]
    assert kube.calls[1].error == 409


async def test_a_409_without_a_readable_winner_is_raised() -> None:
    kube = FakeKube()
    kube.fail_next(409, on="create_secret")
    with pytest.raises(KubeError) as raised:
        await shared_certificate(kube, "finops-system", SECRET, Issuer())
    assert raised.value.status == 409


@pytest.mark.parametrize("status", [0, 403])
async def test_other_failures_to_create_the_secret_are_raised(status: int) -> None:
    kube = FakeKube()
    kube.fail_next(status, on="create_secret")
    with pytest.raises(KubeError) as raised:
        await shared_certificate(kube, "finops-system", SECRET, Issuer())
    assert raised.value.status == status
    assert kube.secrets == {}


def configuration_path(plural: str) -> str:
    return f"/apis/admissionregistration.k8s.io/v1/{plural}/finops-operator"


CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


def with_hooks(*bundles: str | None) -> dict[str, Any]:
    hooks = []
    for index, bundle in enumerate(bundles):
        client: dict[str, Any] = {"service": {"name": "finops-operator-webhook"}}
        if bundle is not None:
            client["caBundle"] = bundle
        hooks.append({"name": f"hook-{index}", "clientConfig": client})
    return {"webhooks": hooks}


async def test_the_ca_goes_into_both_configurations_once() -> None:
    kube = FakeKube()
    bundle = base64.b64encode(CA).decode()
    kube.put_raw(configuration_path("validatingwebhookconfigurations"), with_hooks(None, "old"))
    kube.put_raw(configuration_path("mutatingwebhookconfigurations"), with_hooks(bundle))
    await inject_ca_bundle(kube, CA)
    [write] = kube.writes
    assert (write.verb, write.resource) == (
        "raw PATCH",
        configuration_path("validatingwebhookconfigurations"),
    )
    validating = kube.by_path[configuration_path("validatingwebhookconfigurations")]
    assert [h["clientConfig"]["caBundle"] for h in validating["webhooks"]] == [bundle, bundle]
    await inject_ca_bundle(kube, CA)
    assert len(kube.writes) == 1  # already there: nothing more to write


async def test_a_missing_configuration_is_a_warning_and_the_other_is_still_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()
    kube.put_raw(configuration_path("mutatingwebhookconfigurations"), with_hooks(None))
    await inject_ca_bundle(kube, CA)
    assert "Cannot set caBundle on validatingwebhookconfigurations" in caplog.text
    assert [w.resource for w in kube.writes] == [
        configuration_path("mutatingwebhookconfigurations")
    ]


async def test_an_outage_while_setting_the_ca_is_only_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube(outage=True)
    await inject_ca_bundle(kube, CA)
    assert kube.writes == []
    assert caplog.text.count("Cannot set caBundle") == 2


async def test_the_operators_match_conditions_go_in_with_the_ca_and_follow_its_configuration() -> (
    None
):
    kube = FakeKube()
    bundle = base64.b64encode(CA).decode()
    static = [{"name": "gpu-workload", "expression": "true"}]
    for plural, name in (
        ("validatingwebhookconfigurations", conventions.VALIDATING_WEBHOOK),
        ("mutatingwebhookconfigurations", conventions.MUTATING_WEBHOOK),
    ):
        hook = {"name": name, "clientConfig": {"caBundle": bundle}, "matchConditions": static}
        kube.put_raw(configuration_path(plural), {"webhooks": [hook]})
    await inject_ca_bundle(kube, CA, DEFAULTS)
    assert [w.verb for w in kube.writes] == ["raw PATCH", "raw PATCH"]  # the CA is there
    validating = kube.by_path[configuration_path("validatingwebhookconfigurations")]
    names = [c["name"] for c in validating["webhooks"][0]["matchConditions"]]
    assert names == ["gpu-workload", VALIDATING_CONDITION]
    await inject_ca_bundle(kube, CA, DEFAULTS)
    assert len(kube.writes) == 2  # in step: nothing more to write
    stricter = Config(labels={"acme.io/owner": LabelRule()})
    await inject_ca_bundle(kube, CA, webhook_settings(stricter, "finops-system"))
    validating = kube.by_path[configuration_path("validatingwebhookconfigurations")]
    [_, ours] = validating["webhooks"][0]["matchConditions"]
    assert "'acme.io/owner' in labels" in ours["expression"]
    assert len(kube.writes) == 4


async def test_a_configuration_changed_between_read_and_patch_is_not_overwritten() -> None:
    kube = FakeKube()
    path = configuration_path("validatingwebhookconfigurations")
    hook = {"name": conventions.VALIDATING_WEBHOOK, "clientConfig": {"caBundle": "b2xk"}}
    kube.put_raw(path, {"metadata": {"resourceVersion": "7"}, "webhooks": [hook]})
    ops = conditions_patch(await kube.raw("GET", path), DEFAULTS)
    kube.by_path[path]["metadata"]["resourceVersion"] = "8"  # someone else's write
    with pytest.raises(KubeError) as err:
        await kube.raw("PATCH", path, ops, "application/json-patch+json")
    assert err.value.status == 422
    assert "matchConditions" not in kube.by_path[path]["webhooks"][0]


async def test_conditions_the_api_server_refuses_are_a_warning_after_the_ca_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = FakeKube()
    path = configuration_path("validatingwebhookconfigurations")
    hook = {"name": conventions.VALIDATING_WEBHOOK, "clientConfig": {}}
    kube.put_raw(path, {"webhooks": [hook]})
    await inject_ca_bundle(kube, CA)  # the CA alone
    kube.fail_next(422, on="raw PATCH")  # as the API server refuses an expression
    await inject_ca_bundle(kube, CA, DEFAULTS)
    assert "matchConditions" not in kube.by_path[path]["webhooks"][0]
    assert kube.by_path[path]["webhooks"][0]["clientConfig"]["caBundle"]
    assert (
        "Cannot set the operator's matchConditions and namespaceSelector on validatingwebhook"
        in (caplog.text)
    )


async def test_at_start_the_shared_certificates_ca_goes_into_the_webhook_configurations() -> None:
    kube, issue = FakeKube(), Issuer()
    kube.put_raw(configuration_path("validatingwebhookconfigurations"), with_hooks(None))
    kube.put_raw(configuration_path("mutatingwebhookconfigurations"), with_hooks(None))
    cert, key, ca = await first_shared_certificate(kube, "finops-system", SECRET, issue)
    assert (cert, key, ca) == (b"cert-finops-system", b"key-finops-system", b"cert-finops-system")
    bundle = base64.b64encode(ca).decode()
    for plural in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        hooks = kube.by_path[configuration_path(plural)]["webhooks"]
        assert [h["clientConfig"]["caBundle"] for h in hooks] == [bundle]


async def test_at_start_the_operators_match_conditions_follow_the_ca() -> None:
    kube = FakeKube()
    for plural, name in (
        ("validatingwebhookconfigurations", conventions.VALIDATING_WEBHOOK),
        ("mutatingwebhookconfigurations", conventions.MUTATING_WEBHOOK),
    ):
        kube.put_raw(configuration_path(plural), {"webhooks": [{"name": name, "clientConfig": {}}]})
    await first_shared_certificate(kube, "finops-system", SECRET, Issuer(), DEFAULTS)
    for plural, name in (
        ("validatingwebhookconfigurations", conventions.VALIDATING_WEBHOOK),
        ("mutatingwebhookconfigurations", conventions.MUTATING_WEBHOOK),
    ):
        [hook] = kube.by_path[configuration_path(plural)]["webhooks"]
        assert hook["clientConfig"]["caBundle"]
        assert hook["matchConditions"] == [DEFAULTS.gpu_condition, *DEFAULTS.conditions[name]]


async def test_a_custom_gpu_resource_and_exempt_namespace_are_written_into_both_webhooks() -> None:
    kube = FakeKube()
    manifest_gpu = {"name": GPU_CONDITION, "expression": "the manifest's default resources"}
    selector = {"matchExpressions": [{"key": NAME_LABEL, "operator": "NotIn", "values": ["x"]}]}
    for plural, name in (
        ("validatingwebhookconfigurations", conventions.VALIDATING_WEBHOOK),
        ("mutatingwebhookconfigurations", conventions.MUTATING_WEBHOOK),
    ):
        hook = {
            "name": name,
            "clientConfig": {},
            "matchConditions": [manifest_gpu],
            "namespaceSelector": selector,
        }
        kube.put_raw(configuration_path(plural), {"webhooks": [hook], "metadata": {}})
    config = Config(
        gpu_resources=("nvidia.com/gpu", "example.com/gpu"), exempt_namespaces=("gpu-infra",)
    )
    await inject_ca_bundle(kube, CA, webhook_settings(config, "finops"))
    for plural in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        [hook] = kube.by_path[configuration_path(plural)]["webhooks"]
        [gpu, _] = hook["matchConditions"]
        assert gpu["name"] == GPU_CONDITION
        assert condition_true(gpu, workload("Pod", resource="example.com/gpu"), None, "CREATE")
        assert condition_true(gpu, workload("Job", resource="nvidia.com/gpu"), None, "CREATE")
        assert not condition_true(gpu, workload("Pod", gpus=None), None, "CREATE")
        assert not condition_true(gpu, workload("Pod", resource="amd.com/gpu"), None, "CREATE")
        [names] = hook["namespaceSelector"]["matchExpressions"]
        assert names["values"] == ["gpu-infra", "finops"]
