"""Reads the configuration file (YAML) and hands it to the domain's validation.

The file is named by `--config`, else by $FINOPS_CONFIG; with neither, the
built-in defaults apply. Unreadable files and invalid YAML are `ConfigError`s
that name the file. A file that is the install's ConfigMap itself (`kind:
ConfigMap` with a `config.yaml` key, as in manifests/base/config.yaml) is read
through that key, so CI can check the manifest it applies:
`finops-operator lint --config manifests/base/config.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import yaml

from finops_operator.domain.config import Config, parse_config
from finops_operator.domain.conventions import CONFIGMAP_KEY
from finops_operator.errors import ConfigError

CONFIG_ENV: Final = "FINOPS_CONFIG"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the file named by `path`, else by $FINOPS_CONFIG, else the embedded default."""
    chosen = path if path is not None else os.environ.get(CONFIG_ENV) or None
    if chosen is None:
        return Config()
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{file}: cannot read the configuration file: {reason}") from None
    return parse_config_text(text, str(file))


def parse_config_text(text: str, source: str) -> Config:
    """The configuration in `text` (a file's content, or a ConfigMap's `config.yaml` key,
    as the operator's watch of its ConfigMap reads it); `source` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    if isinstance(data, dict) and data.get("kind") == "ConfigMap" and "data" in data:
        inner = (data.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(inner, str):
            raise ConfigError(f"{source}: a ConfigMap without a {CONFIGMAP_KEY!r} key in data")
        try:
            data = yaml.safe_load(inner)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"{source}: data.{CONFIGMAP_KEY} is not valid YAML: {' '.join(str(err).split())}"
            ) from None
    return parse_config(data, source)
