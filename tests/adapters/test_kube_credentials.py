"""The one credential loader: what kopf, ListWatch and KubeApi are given from a kubeconfig."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from finops_operator.adapters import kube_credentials
from finops_operator.adapters.list_watch import Connection


def kubeconfig(tmp_path: Path, user: dict[str, str], server: str) -> str:
    path = tmp_path / "kubeconfig"
    cluster = {"server": server}
    if server.startswith("https"):
        cluster["certificate-authority-data"] = base64.b64encode(b"not read here").decode()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


def test_a_token_reaches_every_transport(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, {"token": "s3cret"}, "http://127.0.0.1:6443/")
    credentials = kube_credentials.load(path)
    assert kube_credentials.bearer(credentials) == "Bearer s3cret"
    fields = kube_credentials.login_fields(credentials)
    assert fields.server == "http://127.0.0.1:6443" and fields.token == "s3cret"
    assert fields.certificate_path is None and not fields.insecure
    connection = Connection.of(credentials, "agent")
    assert connection.server == fields.server
    assert connection.authorization() == "Bearer s3cret"


def test_client_certificates_and_the_ca_are_named_by_path(tmp_path: Path) -> None:
    user = {
        "client-certificate-data": base64.b64encode(b"cert").decode(),
        "client-key-data": base64.b64encode(b"key").decode(),
    }
    credentials = kube_credentials.load(kubeconfig(tmp_path, user, "https://10.0.0.1:6443"))
    fields = kube_credentials.login_fields(credentials)
    assert fields.token is None and kube_credentials.bearer(credentials) is None
    assert fields.ca_path and Path(fields.ca_path).read_bytes() == b"not read here"
    assert fields.certificate_path and Path(fields.certificate_path).read_bytes() == b"cert"
    assert fields.private_key_path and Path(fields.private_key_path).read_bytes() == b"key"


def test_an_insecure_kubeconfig_stays_insecure_for_kopf(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://h:1", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert kube_credentials.login_fields(kube_credentials.load(str(path))).insecure


def test_a_pods_service_account_token_reaches_kopf_without_its_scheme(tmp_path: Path) -> None:
    # load_incluster_config stores "bearer <token>" (lower case), a kubeconfig "Bearer".
    credentials = kube_credentials.load(kubeconfig(tmp_path, {"token": "t"}, "http://h:1"))
    credentials.refresh_api_key_hook = None  # what a pod has: no kubeconfig to reload
    credentials.api_key = {"BearerToken": "bearer eyJ.sa-token\n"}
    fields = kube_credentials.login_fields(credentials)
    assert fields.token == "eyJ.sa-token"
