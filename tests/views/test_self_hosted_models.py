"""The self-hosted models' rows: the cluster in JSON, and a cluster column in the table
and the page only when the rows span several clusters."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from finops_operator.domain.costs.self_hosted import SelfHostedModel
from finops_operator.views.self_hosted_models import html_section, table_lines, to_json_rows

LLAMA = SelfHostedModel(
    model="llama-3.1-70b",
    namespace="ml-serving",
    gpu_hours=Decimal(1440),
    gpu_cost=Decimal(5760),
    prompt_tokens=Decimal(4_800_000_000),
    generation_tokens=Decimal(1_200_000_000),
)


def test_json_rows_name_their_cluster() -> None:
    [row] = to_json_rows([replace(LLAMA, cluster="eu-1")])
    assert (row["model"], row["namespace"], row["cluster"]) == (
        "llama-3.1-70b",
        "ml-serving",
        "eu-1",
    )
    assert row["costPer1MTokens"] == "0.9600"


def test_one_cluster_prints_no_cluster_column() -> None:
    lines = table_lines([LLAMA], "USD")
    assert lines[1].split()[:3] == ["MODEL", "NAMESPACE", "GPU"]
    assert "<th>Cluster</th>" not in html_section([LLAMA], "USD")


def test_rows_of_two_clusters_print_which_cluster_each_is() -> None:
    models = [replace(LLAMA, cluster="eu-1"), replace(LLAMA, cluster="us-2", gpu_cost=Decimal(1))]
    lines = table_lines(models, "USD")
    assert lines[1].split()[:3] == ["MODEL", "NAMESPACE", "CLUSTER"]
    assert [line.split()[2] for line in lines[2:]] == ["eu-1", "us-2"]
    # Text columns are left-aligned, figures right-aligned under their header.
    assert lines[2].index("eu-1") == lines[1].index("CLUSTER")
    assert lines[2].rstrip().endswith("-")
    page = html_section(models, "USD")
    assert "<th>Cluster</th>" in page and "<td>us-2</td>" in page
