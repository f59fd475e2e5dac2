"""The report as a reader meets it: opened in a real headless Chromium (Debian's package).

Runs under `make test`, which installs chromium and sets CSFCART_BROWSER_TESTS=1 so that a
missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from tests.conftest import run_snakemake, write_config

pytestmark = pytest.mark.e2e

CATEGORIES = [
    "1. Data and QC",
    "2. Integration",
    "3. Cell types",
    "4. CAR-T",
    "5. Composition",
    "6. Expression",
    "7. Communication",
    "8. Claims",
    "9. Provenance",
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-extensions", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "Debian's chromium is not installed (make browser-deps installs it)"
        if os.environ.get("CSFCART_BROWSER_TESTS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=FLAGS)
        yield b
        b.close()


class Page:
    """A page that records console errors, uncaught exceptions and every request it makes."""

    def __init__(self, browser, url):
        self.errors, self.requests = [], []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = url
        self.page.goto(url)

    def external_requests(self):
        return [u for u in self.requests if not u.startswith(("data:", "file:", "about:"))]


def build_report(results, override, configfile):
    report = results / "report.html"
    proc = run_snakemake("--configfile", configfile, str(override), "--report", str(report), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert report.stat().st_size > 100_000
    return report


def show(page, category, subcategory):
    """Navigate the report's menu to one (sub)category, as a reader clicks through it."""
    page.page.goto(page.url)
    page.page.get_by_text(category, exact=True).click()
    if subcategory is not None:
        page.page.get_by_text(subcategory, exact=True).click()
    rows = page.page.locator("nav tr", has=page.page.locator("a[iconname=eye]"))
    rows.first.wait_for()
    return rows


def check_every_result(page):
    """Click every result of every category; return {category: (figures shown, tables shown)}."""
    layout = page.page.evaluate(
        "() => Object.fromEntries(Object.entries(categories).map(([c, s]) => [c, Object.keys(s)]))"
    )
    seen = {}
    for category, subcategories in layout.items():
        figures = tables = 0
        # a category whose results all lack a subcategory lists them directly ("Other")
        for sub in subcategories if subcategories != ["Other"] else [None]:
            rows = show(page, category, sub)
            for i in range(rows.count()):
                label = rows.nth(i).inner_text().strip()
                rows.nth(i).locator("a[iconname=eye]").click()
                frame = page.page.locator("iframe")
                if frame.count():
                    body = page.page.frame_locator("iframe").first.locator("table tbody tr")
                    body.first.wait_for(timeout=10_000)
                    assert body.count() > 0, f"{category} / {label}: empty table"
                    tables += 1
                else:
                    img = page.page.locator("img[src^='data:image/png']").first
                    img.wait_for(timeout=10_000)
                    width = img.evaluate("e => e.complete ? e.naturalWidth : 0")
                    assert width > 100, f"{category} / {label}: figure did not render"
                    figures += 1
        seen[category] = (figures, tables)
    return seen


@pytest.fixture(scope="module")
def tiny_report(tiny_run):
    return build_report(tiny_run, tiny_run.parents[1] / "override.yaml", "config/datasets/csf_bcma_cart_tiny.yaml")


def test_report_opens_on_the_study_the_dataset_and_the_claims(tiny_run, tiny_report, browser):
    from csfcart.registry import CLAIMS, STUDIES

    page = Page(browser, tiny_report.as_uri())
    first = page.page.locator("body").inner_text()
    claims = pd.read_csv(tiny_run / "claims.tsv", sep="\t")
    assert STUDIES["bcma_ms_csf"] in first
    assert "csf_bcma_cart_tiny" in first and "synthetic cohort" in first and "3 patients" in first
    for cid in claims["claim_id"]:
        assert f"{cid} {CLAIMS[cid].statement}" in first, cid
    assert page.errors == [] and page.external_requests() == []


def test_a_report_table_holds_every_row(tiny_run, tiny_report, browser):
    """The interactions table (thousands of rows) is whole: paged, filtered and sorted over all rows."""
    table = pd.read_csv(tiny_run / "communication" / "interactions.tsv", sep="\t")
    assert len(table) > 1000
    page = Page(browser, tiny_report.as_uri())
    rows = show(page, "7. Communication", None)
    rows.filter(has_text="changed interactions (table)").locator("a[iconname=eye]").click()
    frame = page.page.frame_locator("iframe").first
    frame.locator("table#data tbody tr").first.wait_for()
    assert f"of {len(table)}" in frame.locator("#status").inner_text()
    assert frame.locator("table#data tbody tr").count() == 100  # one page
    ligand = table["ligand_complex"].value_counts().index[-1]  # a rare ligand: its rows sit on late pages
    frame.locator("#filter").fill(ligand)
    hits = table[["ligand_complex", "receptor_complex"]].apply(lambda c: c.str.contains(ligand, case=False)).any(axis=1)
    assert frame.locator("#shown").inner_text() == str(int(hits.sum()))
    assert frame.locator("table#data tbody tr").count() == min(100, int(hits.sum()))
    for text in frame.locator("table#data tbody tr").all_inner_texts():
        assert ligand.lower() in text.lower()
    assert page.errors == []


def test_report_opens_in_chromium_with_every_category(tiny_run, tiny_report, browser):
    page = Page(browser, tiny_report.as_uri())
    menu = page.page.locator("nav").first.inner_text()
    # the categories in reading order, as the menu lists them
    positions = [menu.index(c) for c in CATEGORIES]
    assert positions == sorted(positions), menu
    seen = check_every_result(page)
    assert sorted(seen) == CATEGORIES
    for category in CATEGORIES[:-1]:
        assert seen[category][0] >= 1, f"no figure in {category}: {seen}"
    assert seen["9. Provenance"][1] == 1
    # the claims table is browsable: one row per claim of claims.tsv
    claims = pd.read_csv(tiny_run / "claims.tsv", sep="\t")
    rows = show(page, "8. Claims", None)
    rows.filter(has_text="claims table").locator("a[iconname=eye]").click()
    table = page.page.frame_locator("iframe").first.locator("table#data tbody tr")
    table.first.wait_for()
    assert table.count() == len(claims)
    first = table.first.inner_text()
    assert "C1" in first and claims.loc[claims["claim_id"] == "C1", "verdict"].iloc[0] in first
    shot = tiny_run / "report_screenshot.png"
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert page.errors == [], page.errors
    assert page.external_requests() == [], page.external_requests()


def test_summary_page_stands_alone(tiny_run, browser):
    page = Page(browser, (tiny_run / "summary.html").as_uri())
    claims = pd.read_csv(tiny_run / "claims.tsv", sep="\t")
    rows = page.page.locator("table#claims tbody tr")
    assert rows.count() == len(claims)
    # each row by its first cell (another row's text may name a claim: C7's names C8)
    shown = {
        rows.nth(i).locator("td").first.inner_text().strip(): rows.nth(i).inner_text() for i in range(rows.count())
    }
    for cid, verdict in zip(claims["claim_id"], claims["verdict"], strict=True):
        assert verdict.replace("_", " ") in shown[cid], (cid, shown[cid])
    assert page.page.locator("img#forest").evaluate("e => e.naturalWidth") > 100
    assert page.errors == [] and page.external_requests() == []
    # it says what produced it and links the provenance files, which exist
    assert "commit" in page.page.locator("#provenance").inner_text()
    for href in page.page.locator("#provenance a").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert (tiny_run / href).is_file(), href
    page.page.screenshot(path=str(tiny_run / "summary_screenshot.png"), full_page=True)


def test_a_cohort_without_csf_drops_the_communication_pages(tmp_path_factory, browser):
    """An optional step that does not apply (no CSF: no communication) leaves the report whole."""
    tmp = tmp_path_factory.mktemp("blood_only")
    override = write_config(tmp, f"results: {tmp}\nintegration:\n  method: harmony\n")
    config = "config/datasets/pbmc_cd19_allo_tiny.yaml"
    proc = run_snakemake(
        "-c2", "--workflow-profile", "workflow/profiles/default", "--configfile", config, str(override)
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    results = tmp / "pbmc_cd19_allo_tiny"
    assert not (results / "communication").exists()
    page = Page(browser, build_report(results, override, config).as_uri())
    seen = check_every_result(page)
    assert "7. Communication" not in seen
    assert {c for c in CATEGORIES if c != "7. Communication"} <= set(seen)
    claims = pd.read_csv(results / "claims.tsv", sep="\t")
    assert set(claims["claim_id"]) == {"D1", "D2", "D3"}
    assert page.errors == []
