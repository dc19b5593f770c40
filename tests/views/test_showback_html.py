"""The HTML showback page: well formed, self-contained, and holding what it should."""

from __future__ import annotations

import html.parser

from finops_operator.views.showback_html import render_showback
from tests.views.costreports import NOW, reports


class _Balance(html.parser.HTMLParser):
    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_the_showback_page_is_well_formed_and_self_contained() -> None:
    page = render_showback(reports(), NOW)
    parser = _Balance()
    parser.feed(page)
    assert parser.errors == [] and parser.stack == []
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe"}
    assert {"style", "svg", "table"} <= tags
    for _, attrs in parser.tags:
        assert not {"src", "href"} & set(attrs) or attrs.get("href", "").startswith("#")
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_showback_page_holds_the_team_table_and_the_rest() -> None:
    page = render_showback(reports(), NOW, note="Simulated data")
    assert page.index('id="period-2026-11"') < page.index('id="period-2026-10"')
    table = page[
        page.index('<table class="teams">') : page.index(
            "</table>", page.index('<table class="teams">')
        )
    ]
    assert table.index("search-platform") < table.index("&lt;b&gt;recsys&lt;/b&gt;")
    assert "untagged (no team label)" in table and "cluster total" in table
    assert "500.00 USD" in table and "80.0 %" in table  # budget and its use
    assert "<b>recsys</b>" not in page  # escaped
    assert "search/finetune-7" in page and "cc-1042" in page
    assert "600.00 USD" in page  # the headline total
    assert "2.5 % of spend" in page  # untagged share: 15 / 600
    # busy GPU, idle GPU, tokens, shared for 2 teams; untagged has no busy GPU cost
    assert page.count("<rect") == 4 + 4 + 3
    assert "Simulated data" in page


def test_an_empty_showback_page_says_so() -> None:
    assert "No CostReports with figures yet" in render_showback([], NOW)
