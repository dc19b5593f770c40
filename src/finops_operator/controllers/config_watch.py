"""The operator's own ConfigMap, validated whenever it changes.

The operator reads its configuration once, at start: every controller and the
admission server hold it. A ConfigMap edited afterwards is therefore never
applied by the running process. What this watch adds is that an edit is
checked when it is made, not at the next restart:

- an invalid configuration (`mode: enforced`) is never applied: the one in use
  stays, `finops_config_valid` drops to 0, an ERROR log line and a Warning Event
  `InvalidConfig` on the ConfigMap name the problem;
- a valid one other than the one in use sets `finops_config_restart_needed` and
  posts a Normal Event `ConfigRestartNeeded`: a restart applies it;
- while the safe default is in use (the operator started with an invalid
  configuration), `finops_config_safe_default` is 1 and a Warning Event
  `SafeDefaultConfig` on the ConfigMap says so.

Every replica watches and reports for itself (each holds its own configuration),
so its Events are posted whether it leads or not, once per content seen.
docs/configuration.md, "Changing the configuration", has the decision.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from finops_operator.controllers.policy_controller import EventPoster
from finops_operator.domain.config import Config, ConfigChange, judge_change
from finops_operator.domain.conventions import CONFIGMAP_KEY
from finops_operator.errors import ConfigError
from finops_operator.ports import MetricsPort, OpenWatch

logger = logging.getLogger(__name__)

# The text of a configuration and where it came from -> the Config, or ConfigError.
ConfigParser = Callable[[str, str], Config]


class ConfigWatch:
    """Validates each new content of the operator's ConfigMap against the one in use."""

    def __init__(
        self,
        in_use: Config,
        parse: ConfigParser,
        metrics: MetricsPort,
        post_event: EventPoster,
        *,
        safe_default_problem: str | None = None,
    ) -> None:
        """`safe_default_problem`: why the configuration at start was refused, when the
        safe default is `in_use`; None when the configuration at start was valid."""
        self.in_use = in_use
        self.parse = parse
        self.metrics = metrics
        self.post_event = post_event
        self.safe_default_problem = safe_default_problem
        self.seen: str | None = None  # digest of the last content judged
        self.change: ConfigChange | None = None
        metrics.mark_config(
            valid=safe_default_problem is None,
            restart_needed=False,
            safe_default=safe_default_problem is not None,
        )

    async def run(self, open_watch: OpenWatch, namespace: str, name: str) -> None:
        """Watch the ConfigMap `name` of `namespace`, by name: the operator's Role grants
        list and watch of that one."""

        async def relisted(_: set[tuple[str, str]]) -> None:
            return None  # a relist delivers it again, as ADDED, if it still exists

        path = f"/api/v1/namespaces/{namespace}/configmaps"
        selector = f"metadata.name={name}"
        await open_watch(path, self.on_event, relisted, field_selector=selector).run()

    async def on_event(self, type: str | None, obj: Mapping[str, Any]) -> None:
        """A watch event of the ConfigMap (the watch selects it by name)."""
        if type == "DELETED":
            return  # the configuration in use stays; a new ConfigMap is judged when it comes
        body = {"apiVersion": "v1", "kind": "ConfigMap", **obj}
        meta = body.get("metadata") or {}
        text = (body.get("data") or {}).get(CONFIGMAP_KEY)
        source = f"ConfigMap {meta.get('namespace')}/{meta.get('name')}"
        digest = hashlib.sha256(repr(text).encode()).hexdigest()
        if digest == self.seen:
            return
        self.seen = digest
        problem: str | None = None
        seen: Config | None = None
        if not isinstance(text, str):
            problem = f"{source}: no {CONFIGMAP_KEY!r} key in data"
        else:
            try:
                seen = self.parse(text, source)
            except ConfigError as err:
                problem = str(err)
        safe_default = self.safe_default_problem is not None
        self.change = judge_change(self.in_use, seen, safe_default_in_use=safe_default)
        self.metrics.mark_config(
            valid=problem is None,
            restart_needed=self.change is ConfigChange.RESTART_NEEDED,
            safe_default=safe_default,
        )
        kept = "the safe default" if safe_default else "the configuration in use"
        if problem is not None:
            logger.error("Invalid configuration, not applied (%s stays): %s", kept, problem)
            message = f"Not applied, {kept} stays: {problem}"
            await self.post_event(body, "Warning", "InvalidConfig", message)
        elif self.change is ConfigChange.RESTART_NEEDED:
            logger.warning("%s holds a valid new configuration: restart to apply it", source)
            message = "Valid; the operator reads its configuration at start: restart it to apply"
            await self.post_event(body, "Normal", "ConfigRestartNeeded", message)
        if safe_default:
            logger.error(
                "Serving the SAFE DEFAULT configuration (built-in defaults, mode audit): "
                "the configuration at start was invalid: %s",
                self.safe_default_problem,
            )
            message = (
                "The operator serves the safe default (built-in defaults, mode audit) because "
                f"its configuration at start was invalid: {self.safe_default_problem}"
            )
            await self.post_event(body, "Warning", "SafeDefaultConfig", message)
