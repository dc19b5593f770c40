"""Where the API server is and who the operator is to it: loaded once, shared by every client.

The operator reaches the API through three transports (docs/architecture.md, "One way to
reach the API"): kopf for the custom resources and Namespaces, `list_watch.ListWatch` for
the kinds a fleet has by the ten thousand, and `kube_api.KubeApi` for every write. They
all take their server, CA, client certificate and token from the one
`kubernetes.client.Configuration` that `load()` returns: the pod's ServiceAccount when in
a cluster, else the kubeconfig. The token is read through `bearer()` at each request, so a
ServiceAccount token rotated on disk reaches all three (the client's refresh hook re-reads
it), and a 401 answered to kopf makes it ask `login_fields()` again.
"""

from __future__ import annotations

from dataclasses import dataclass

import kubernetes

Credentials = kubernetes.client.Configuration


def load(kubeconfig: str | None = None) -> Credentials:
    """The in-cluster ServiceAccount, else the kubeconfig: `kubeconfig`, else KUBECONFIG
    (as it was when the client was imported), else ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except kubernetes.config.ConfigException:
            pass  # not in a pod
    kubernetes.config.load_kube_config(kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def bearer(configuration: kubernetes.client.Configuration) -> str | None:
    """The `Authorization` header value of the next request, None with client certificates."""
    setting = configuration.auth_settings().get("BearerToken")
    return str(setting["value"]) if setting and setting.get("value") else None


@dataclass(frozen=True)
class LoginFields:
    """What kopf's `ConnectionInfo` needs, read from the shared configuration."""

    server: str
    ca_path: str | None
    insecure: bool
    token: str | None
    certificate_path: str | None
    private_key_path: str | None


def login_fields(configuration: kubernetes.client.Configuration) -> LoginFields:
    header = bearer(configuration)
    token = None
    if header:  # "Bearer T" from a kubeconfig, "bearer T" from a pod's ServiceAccount
        scheme, _, value = header.strip().partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else header.strip()
    return LoginFields(
        server=configuration.host.rstrip("/"),
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        token=token,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
    )
