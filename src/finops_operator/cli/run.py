"""`finops-operator run`: the operator against the current kubeconfig (or in-cluster config).

The operator and kopf are imported only when this command runs, so `lint`,
`render` and `report` start without them.
"""

from __future__ import annotations

import argparse
import logging
import math
import os

from finops_operator.adapters.config_file import load_config
from finops_operator.domain import conventions
from finops_operator.domain.config import Config, safe_default
from finops_operator.errors import ConfigError

logger = logging.getLogger("finops_operator")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $FINOPS_CONFIG or built in)")
    parser.add_argument(
        "--invalid-config",
        choices=("exit", "safe-default"),
        default="exit",
        help="when the configuration is invalid at start: exit 2 naming each problem (the "
        "default, for a terminal), or serve the safe default (built-in defaults, mode audit) "
        "and say so loudly, as the Deployment does (docs/configuration.md)",
    )
    parser.add_argument(
        "--config-map",
        default=None,
        help="the ConfigMap (in --namespace) that holds the configuration: each change is "
        "validated when it is made; an invalid one is reported, never applied",
    )
    parser.add_argument("--webhook-host", default="0.0.0.0", help="address the webhook listens on")
    parser.add_argument("--webhook-port", type=int, default=9443, help="HTTPS port for admission")
    parser.add_argument("--webhook-cert", help="TLS certificate (PEM); self-signed when absent")
    parser.add_argument("--webhook-key", help="TLS private key (PEM) for --webhook-cert")
    parser.add_argument(
        "--webhook-secret",
        help="TLS Secret in the operator's namespace shared by all replicas: created once "
        "if absent, its CA set as caBundle of the webhook configurations",
    )
    parser.add_argument(
        "--webhook-cert-reload-seconds",
        type=float,
        default=10.0,
        help="how often the certificate (files or Secret) is read again; a new valid pair "
        "is served to new connections without a restart",
    )
    parser.add_argument(
        "--webhook-drain-seconds",
        type=float,
        default=5.0,
        help="at SIGTERM, how long the servers keep answering, each answer closing its "
        "connection, before they close: the API server's pooled connections end cleanly "
        '(docs/install.md, "Two replicas, one writer"); 0 closes at once',
    )
    parser.add_argument(
        "--metrics-port", type=int, default=8080, help="port of /metrics and /healthz"
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="the operator's own namespace (default: $POD_NAMESPACE or finops-system)",
    )
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="write without holding the Lease (only for a single replica)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        help="how long the leader's Lease holds without renewal (renewed every third of it)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Option combinations argparse alone cannot refuse; exits 2 naming them."""
    if bool(args.webhook_cert) != bool(args.webhook_key):
        parser.error("--webhook-cert and --webhook-key go together")
    if args.webhook_cert_reload_seconds <= 0:
        parser.error("--webhook-cert-reload-seconds must be positive")
    if not 0 <= args.webhook_drain_seconds < math.inf:  # nan fails both
        parser.error("--webhook-drain-seconds must be 0 or more, and finite")
    if args.webhook_cert and args.webhook_secret:
        parser.error(
            "--webhook-secret replaces --webhook-cert/--webhook-key; give one or the other"
        )


def run(args: argparse.Namespace) -> int:
    from finops_operator.controllers.assembly import RunOptions
    from finops_operator.operator import run_operator

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    namespace = args.namespace or os.environ.get("POD_NAMESPACE") or conventions.OPERATOR_NAMESPACE
    options = RunOptions(
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        metrics_port=args.metrics_port,
        webhook_cert=args.webhook_cert,
        webhook_key=args.webhook_key,
        webhook_secret=args.webhook_secret,
        leader_election=not args.no_leader_election,
        lease_seconds=args.lease_seconds,
        cert_reload_seconds=args.webhook_cert_reload_seconds,
        config_map=args.config_map,
        drain_seconds=args.webhook_drain_seconds,
    )
    config, problem = choose_configuration(args.config, args.invalid_config == "safe-default")
    return run_operator(config, namespace, options, config_problem=problem)


def choose_configuration(
    path: str | None, safe_default_when_invalid: bool
) -> tuple[Config, str | None]:
    """The configuration to serve, and why the file was refused when it is the safe default.

    Without `--invalid-config safe-default` an invalid file raises ConfigError (exit 2).
    """
    try:
        return load_config(path), None
    except ConfigError as err:
        if not safe_default_when_invalid:
            raise
        logger.error(
            "INVALID CONFIGURATION, serving the SAFE DEFAULT (built-in defaults, mode audit) "
            "until it is fixed and the operator restarted: %s",
            err,
        )
        return safe_default(), str(err)
