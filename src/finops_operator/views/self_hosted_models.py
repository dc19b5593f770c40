"""Self-hosted models in the report: JSON rows, table lines and an HTML section.

One row per served model, namespace and cluster (`costs.self_hosted`; the table
and the page show the cluster when the rows span more than one): GPU hours and cost of
its pods, its prompt and generation tokens, the cost per million tokens and, when
`selfHostedModels.comparable` names an API model, what the same tokens cost there.
Money is a string of cents; a cost per million tokens has four decimals (a cheap
model costs cents per million); a model without tokens has `null`, never 0.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

from finops_operator.domain.costs.self_hosted import SelfHostedModel
from finops_operator.domain.money import display_hours, display_money

PER_1M_PLACES: Final = 4


def _per_1m(amount: Decimal | None) -> str | None:
    return None if amount is None else display_money(amount, PER_1M_PLACES)


def to_json_rows(models: Sequence[SelfHostedModel]) -> list[dict[str, Any]]:
    """`selfHostedModels` of `report --format json`."""
    return [
        {
            "model": model.model,
            "namespace": model.namespace,
            "cluster": model.cluster,
            "gpuHours": display_hours(model.gpu_hours),
            "gpuCost": display_money(model.gpu_cost),
            "promptTokens": int(model.prompt_tokens),
            "generationTokens": int(model.generation_tokens),
            "costPer1MTokens": _per_1m(model.cost_per_1m_tokens),
            "comparable": None
            if model.comparable_model is None or model.comparable_cost is None
            else {
                "model": model.comparable_model,
                "cost": display_money(model.comparable_cost),
                "costPer1MTokens": _per_1m(model.comparable_per_1m_tokens),
            },
        }
        for model in models
    ]


def _cells(model: SelfHostedModel, clusters: bool) -> list[str]:
    per_1m = _per_1m(model.cost_per_1m_tokens)
    api = "-"
    if model.comparable_model is not None:
        api_per_1m = _per_1m(model.comparable_per_1m_tokens)
        api = f"{model.comparable_model} {api_per_1m if api_per_1m is not None else '-'}"
    return [
        model.model,
        model.namespace,
        *([model.cluster or "-"] if clusters else []),
        f"{display_hours(model.gpu_hours):,.1f}",
        display_money(model.gpu_cost),
        f"{int(model.prompt_tokens):,}",
        f"{int(model.generation_tokens):,}",
        "-" if per_1m is None else per_1m,
        api,
    ]


HEADER: Final = (
    "MODEL", "NAMESPACE", "GPU HOURS", "GPU COST", "PROMPT TOKENS", "GENERATED TOKENS",
    "PER 1M TOKENS", "API PER 1M",
)  # fmt: skip


def _many_clusters(models: Sequence[SelfHostedModel]) -> bool:
    return len({model.cluster for model in models}) > 1


def _header(clusters: bool) -> list[str]:
    return [*HEADER[:2], *(["CLUSTER"] if clusters else []), *HEADER[2:]]


def table_lines(models: Sequence[SelfHostedModel], currency: str) -> list[str]:
    """The table's section: empty when no model is served."""
    if not models:
        return []
    clusters = _many_clusters(models)
    header = _header(clusters)
    rows = [header, *(_cells(model, clusters) for model in models)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    text = 3 if clusters else 2  # left-aligned columns
    lines = [
        f"Self-hosted models ({currency}; cost per 1M tokens = GPU cost of the serving pods / "
        "tokens; API = the configured comparable model, same tokens):"
    ]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:text], widths, strict=False)] + [
            cell.rjust(width) for cell, width in zip(row[text:], widths[text:], strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def html_section(models: Sequence[SelfHostedModel], currency: str) -> str:
    """The showback page's section: make or buy, per served model."""
    if not models:
        return ""
    clusters = _many_clusters(models)
    head = "".join(f"<th>{html.escape(name.capitalize())}</th>" for name in _header(clusters))
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(model, clusters))
        + "</tr>"
        for model in models
    )
    return (
        '<h2 id="self-hosted">Self-hosted models</h2>\n'
        f'<p class="muted">Cost per million tokens of the models served on our GPUs '
        f"(GPU cost of the serving pods / prompt + generated tokens, {html.escape(currency)}), "
        "beside the API price of the comparable model for the same tokens.</p>\n"
        f'<table class="self-hosted"><tr>{head}</tr>{body}</table>'
    )
