"""Which teams a CostPolicy may act on, and which of two budgets for one team applies.

A CostPolicy is namespaced, but its selector names teams, and the alerts it
renders page those teams. Without a limit, a namespace admin of team-a could
write a policy with `selector.team: team-b` and `budget.monthly: 1` and page
team-b's on-call. So a policy acts only in its *lane*: the team of its own
namespace (the namespace's `resilio.tech/team` label, which only a cluster admin
can set) and the teams `costPolicies.allowedTeams` grants that namespace
(`'*'`: every team, and policies without `selector.team`); the operator's own
namespace, a cluster admin's, acts on every team. A policy outside its lane
renders no rule at all.

Two policies that set one team's budget conflict: the CostReport shows one
budget per team. The one that applies is the oldest (creationTimestamp), then
the first by namespace and name: a rule that does not depend on the order the
operator happened to see them in, and that a new policy cannot use to take over
an existing budget. Both carry a `Conflict` condition naming the other.
docs/costpolicy.md, "Lanes and conflicts", has the decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from finops_operator.domain import conventions
from finops_operator.domain.config import ANY_TEAM, Config

PolicyKey = tuple[str, str]  # namespace, name


@dataclass(frozen=True)
class Lane:
    """The teams the CostPolicies of one namespace may act on."""

    namespace: str
    teams: frozenset[str]
    every_team: bool = False

    def describe(self) -> str:
        if self.every_team:
            return "every team"
        return ", ".join(sorted(self.teams)) or "no team"


def lane_of(
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    config: Config,
    operator_namespace: str = conventions.OPERATOR_NAMESPACE,
) -> Lane:
    """The lane of `namespace`: its own team label plus what the configuration grants it;
    every team in the operator's own namespace."""
    granted = set(config.cost_policies.allowed_teams.get(namespace, ()))
    if namespace == operator_namespace:
        granted.add(ANY_TEAM)
    own = (namespace_labels or {}).get(conventions.TEAM_LABEL)
    if own:
        granted.add(own)
    return Lane(namespace, frozenset(granted - {ANY_TEAM}), ANY_TEAM in granted)


def out_of_lane(team: str | None, lane: Lane) -> str | None:
    """Why a policy selecting `team` (None: every team) is outside `lane`; None when inside."""
    if lane.every_team or (team is not None and team in lane.teams):
        return None
    where = (
        f"the CostPolicies of namespace {lane.namespace} may act only on {lane.describe()} "
        f"(its {conventions.TEAM_LABEL} label, and costPolicies.allowedTeams)"
    )
    if team is None:
        return f"spec.selector has no team, so the policy would act on every team: {where}"
    return f"spec.selector.team {team!r} is outside this namespace's lane: {where}"


@dataclass(frozen=True)
class BudgetClaim:
    """A valid policy in its lane that sets `team`'s monthly budget."""

    key: PolicyKey
    team: str
    created: str  # metadata.creationTimestamp (RFC 3339 in UTC: sorts as text)


def _order(claim: BudgetClaim) -> tuple[str, str, str]:
    return (claim.created or "~", *claim.key)  # no timestamp (not from the API): last


def budget_owners(claims: Iterable[BudgetClaim]) -> dict[str, PolicyKey]:
    """The policy whose budget applies, by team: the oldest, then by namespace and name."""
    owners: dict[str, PolicyKey] = {}
    for claim in sorted(claims, key=_order):
        owners.setdefault(claim.team, claim.key)
    return owners


def budget_conflicts(claims: Iterable[BudgetClaim]) -> dict[PolicyKey, str]:
    """The `Conflict` message of every policy that shares a team's budget with another."""
    by_team: defaultdict[str, list[BudgetClaim]] = defaultdict(list)
    for claim in claims:
        by_team[claim.team].append(claim)
    messages: dict[PolicyKey, str] = {}
    for team, shared in by_team.items():
        if len(shared) < 2:
            continue
        ordered = sorted(shared, key=_order)
        owner = ordered[0].key
        names = ", ".join(f"{ns}/{name}" for ns, name in (c.key for c in ordered))
        for claim in ordered:
            applies = "this one applies" if claim.key == owner else f"{owner[0]}/{owner[1]} applies"
            messages[claim.key] = (
                f"CostPolicies {names} all set team {team!r}'s monthly budget; {applies} "
                "(the oldest by creationTimestamp, then by namespace and name): delete or "
                "merge the others"
            )
    return messages
