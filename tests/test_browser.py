"""Real-browser tests: Debian's Chromium driven by Playwright against a freshly started server."""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.browser import CHROMIUM, chromium, served
from engine.report import summaries
from tests.support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (CI installs it)",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-cache")
    with served(root) as (url, port, _):  # the app starts its own worker pool, which follows the server
        yield url, port, root


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


FAILURES = REPO / "tests" / "output" / "failures"


@contextmanager
def visit(browser, url: str, ready: str | None = None, **options) -> Iterator:
    """A new page at `url` (waiting for the heading `ready`, if given), closed afterwards. When the
    test fails inside, the page's text and a screenshot go into the failure, so a CI log says what
    the browser showed instead of only which locator timed out."""
    from playwright.sync_api import Error as PlaywrightError

    page = browser.new_page(**options)
    try:
        page.goto(url)
        if ready:
            page.get_by_role("heading", name=ready).first.wait_for(timeout=90_000)
        yield page
    except (PlaywrightError, AssertionError) as exc:
        FAILURES.mkdir(parents=True, exist_ok=True)
        shot = FAILURES / f"{re.sub(r'[^a-z0-9]+', '-', page.url.lower())[-80:]}.png"
        page.screenshot(path=str(shot), full_page=True)
        shown = page.inner_text("body")[:3000]
        raise AssertionError(f"{exc}\n--- the page at {page.url} showed ({shot.name}) ---\n{shown}") from exc
    finally:
        page.close()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, read from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_server_listens_on_loopback_only(server):
    _, port, _ = server
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::


def test_a_first_visit_to_a_deep_link_gets_the_app_and_its_navigation(server, browser):
    url, _, _ = server  # this is the fresh server's first page visit
    with visit(browser, f"{url}/surface?view=heat+map", ready="Robust accuracy over sparsity × ε") as page:
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="Runs").wait_for(timeout=30_000)
        assert "app" not in nav.inner_text().split() and "surface" not in nav.inner_text().split()


def test_clicking_a_preset_runs_it_and_opens_its_surface(server, browser):
    url, _, _ = server
    with visit(browser, url, ready="Presets") as page:
        page.get_by_role("button", name="Run smoke").click()
        link = page.get_by_role("link", name="Open its surface")
        link.wait_for(timeout=120_000)
        page.get_by_text(re.compile(r"Job \d+ · run [0-9a-f]{12} · done")).wait_for(timeout=120_000)
        link.click()
        page.get_by_role("heading", name="Robust accuracy over sparsity × ε").wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        assert "run=" in page.url


def test_a_running_preset_can_be_cancelled_from_the_browser(server, browser):
    url, _, _ = server
    with visit(browser, url, ready="Presets") as page:
        page.get_by_role("button", name="Run quickstart").click()
        page.get_by_text("training the base model").first.wait_for(timeout=120_000)
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("cancelled: cancelled by the user").first.wait_for(timeout=60_000)


def test_a_paper_from_the_gallery_queues_its_runs_and_opens_its_page(server, browser):
    url, _, root = server
    with visit(browser, url, ready="Presets") as page:
        page.locator(".st-key-paper-transfer").get_by_role("button", name="Run and check the claim").click()
        page.get_by_role("heading", name="Papers, reproduced small").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"runs not finished")).first.wait_for(timeout=60_000)
        assert "paper=transfer" in page.url
    from engine import api
    from engine.store.db import Store

    store = Store(root)  # stop the real preset the click started: the rest of the suite needs the CPU
    jobs = [api.cancel(j.job_id, store) for j in api.jobs(store) if j.status in ("queued", "running")]
    assert len(jobs) == 2  # the preset's two variants


def test_a_shared_surface_link_opens_the_same_view(server, browser):
    url, _, root = server
    from engine.store.db import Store
    from tests.paper_fakes import fill_paper

    def pfa(variant, step, target, attack, eps):  # a finished run of its own, whatever ran before
        return 0.8, 0.8 - eps - 0.1 * step, 0

    run_id = fill_paper(Store(root), "pfa", pfa, only=["unstructured global"])["unstructured global"]
    with visit(browser, f"{url}/surface?run={run_id[:12]}&view=heat+map&attack=pgd_linf") as page:
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        assert page.get_by_text("heat map").count() >= 1
        assert "view=heat+map" in page.url or "view=heat%20map" in page.url
        assert f"run={run_id[:12]}" in page.url


SCREENSHOTS = REPO / "tests" / "output" / "screenshots"
WIDE = {"width": 1400, "height": 1000}
TITLES = {
    "home": "AER Lab",
    "papers": "Papers, reproduced small",
    "surface": "Robust accuracy over sparsity × ε",
    "compare": "Compare pruning runs",
    "layers": "Layer by layer",
    "budget": "Adversarial budgets while pruning",
    "transfer": "Transfer from the base model",
    "playground": "Attack playground",
    "runs": "Runs",
}


@pytest.mark.parametrize("path", list(TITLES))
def test_every_page_renders_in_the_browser_without_console_errors(server, browser, path):
    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, probes = [], []
    # Streamlit's frontend finds its server path by probing {page path}/_stcore/health and host-config
    # first; the 404s of those probes are its design, not ours. Every other failed request counts.
    page.on(
        "response",
        lambda r: (
            probes.append(r.url)
            if r.status == 404 and re.search(r"/[a-z]+/_stcore/(health|host-config)$", r.url)
            else None
        ),
    )
    page.on("requestfailed", lambda request: errors.append(f"{request.url}: {request.failure}"))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/{'' if path == 'home' else path}")  # the default page lives at /
    page.get_by_role("heading", name=TITLES[path]).first.wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{path}.png"), full_page=True)
    assert page.get_by_text("Traceback").count() == 0
    not_found = [e for e in errors if "status of 404" in e]
    assert len(not_found) <= len(probes), errors  # only the path probes answered 404
    assert [e for e in errors if "status of 404" not in e] == [], errors  # nothing fetched from outside
    assert not any(host in " ".join(errors) for host in ("gstatic", "googleapis", "twemoji")), errors
    page.close()


def test_compare_greys_a_difference_inside_the_noise_and_colours_a_real_one(server, browser):
    from engine.store.db import Store
    from tests.paper_fakes import fill_paper

    def hydra(variant, step, target, attack, eps):  # HYDRA +1 pt (noise) at first, +15 pt (real) at k = 0.01
        lwm = {0: 0.6, 1: 0.5, 2: 0.45, 3: 0.3}[step]
        return 0.8, lwm + ({1: 0.01, 2: 0.01, 3: 0.15}.get(step, 0) if variant == "HYDRA" else 0), 0

    url, _, root = server
    ids = fill_paper(Store(root), "hydra", hydra)
    link = f"{url}/compare?runs={ids['LWM'][:12]},{ids['HYDRA'][:12]}&eps=0.1"
    with visit(browser, link, viewport={"width": 1400, "height": 1100}) as page:
        page.get_by_role("tab", name="Difference").click()
        page.get_by_text("Grey cells: inside the noise").wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"Last checkpoints at ε = .*: \+15\.0 pt.*a real difference")).wait_for(
            timeout=30_000
        )
        page.locator(".heatmaplayer image").first.wait_for(timeout=30_000)  # the map itself is drawn
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "compare-difference.png"), full_page=True)


def test_a_paper_s_verdict_shows_its_parts_and_autoattack_beside_pgd(server, browser):
    from engine.store.db import Store
    from tests.paper_fakes import fill_paper, mrpf_fails

    def mrpf(variant, step, target, attack, eps):  # AutoAttack finds 4 pt more than PGD where it is scored
        clean, robust, moved = mrpf_fails(variant, step, target, attack, eps)
        return clean, robust - (0.04 if attack == "autoattack" and eps else 0.0), moved

    url, _, root = server
    fill_paper(Store(root), "mrpf", mrpf)
    with visit(browser, f"{url}/papers?paper=mrpf", viewport={"width": 1400, "height": 1400}) as page:
        page.get_by_text(re.compile(r"^Judged by pgd_linf")).first.wait_for(timeout=60_000)
        page.get_by_text("Does not hold here", exact=False).first.wait_for(timeout=60_000)
        page.get_by_text("reported, not judged").first.wait_for(timeout=30_000)
        page.get_by_text("PGD against AutoAttack, checkpoint by checkpoint").click()
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the paper's figures are drawn
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "papers-mrpf-verdict.png"), full_page=True)


def test_the_teaching_walk_through_end_to_end_with_a_screenshot_per_step(server, browser):
    """Home → run teaching → read the surface → the heat map's sweet spots → fork with one-shot → Compare."""
    url, _, _ = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with visit(browser, url, ready="Presets", viewport={"width": 1400, "height": 1000}) as page:
        page.get_by_role("button", name="Run teaching").click()
        page.get_by_text(re.compile(r"Job \d+ · run [0-9a-f]{12} · done")).wait_for(timeout=300_000)
        page.get_by_text("Teaching walk-through").click()
        page.screenshot(path=str(SCREENSHOTS / "walk-1-home.png"), full_page=True)
        page.get_by_role("link", name="Open the surface").click()
        page.get_by_text(re.compile(r"^(\d+) of \1 checkpoints evaluated$")).wait_for(timeout=60_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "walk-2-surface.png"), full_page=True)
        page.get_by_test_id("stSidebar").get_by_text("heat map", exact=True).click()
        page.wait_for_url(re.compile(r"view=heat"), timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "walk-3-heatmap.png"), full_page=True)
        page.get_by_role("link", name="What if… (fork this run)").click()
        page.get_by_role("heading", name="What if…").wait_for(timeout=30_000)
        page.get_by_test_id("stSelectbox").filter(has_text="Schedule").first.click()
        page.get_by_role("option", name="one_shot").click()
        page.get_by_text("Changed from the parent").wait_for(timeout=30_000)
        page.get_by_text("share the trained base").wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "walk-4-what-if.png"), full_page=True)
        page.get_by_role("button", name="Submit the what-if").click()
        page.get_by_role("heading", name="Compare pruning runs").wait_for(timeout=60_000)
        assert "runs=" in page.url and page.url.count("%2C") + page.url.count(",") >= 1  # parent and child
        page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        page.screenshot(path=str(SCREENSHOTS / "walk-5-compare.png"), full_page=True)


def test_a_certified_surface_and_its_certified_vs_attacked_slice_render(server, browser):
    from engine import api
    from engine.science.catalog import validate
    from engine.store.db import Store
    from tests.test_certify import CERTIFIED_SPEC

    url, _, root = server
    spec = validate(CERTIFIED_SPEC)
    api.run(spec, Store(root))  # a tiny noise-trained run with a certificate, computed here
    run = spec.run_id()[:12]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with visit(browser, f"{url}/surface?run={run}&attack=smoothing&view=heat+map", viewport=WIDE) as page:
        page.get_by_text(re.compile(r"At the last checkpoint it abstained on \d+ of 100 images")).wait_for(
            timeout=60_000
        )
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "certified-surface.png"), full_page=True)
    with visit(browser, f"{url}/surface?run={run}&attack=smoothing&view=certified+vs+attacked", viewport=WIDE) as page:
        page.get_by_text("smoothing (certified)").first.wait_for(timeout=60_000)
        page.screenshot(path=str(SCREENSHOTS / "certified-vs-attacked.png"), full_page=True)


TOUR_PAGES = {
    "surface": ("Where robustness collapses", "tour-surface.png"),
    "layers": ("Layer by layer", "tour-layers.png"),
    "transfer": ("Transfer from the base model", "tour-transfer.png"),
    "compare": ("Compare pruning runs", "tour-compare.png"),
    "budget": ("Adversarial budgets while pruning", "tour-budget.png"),
    "ratios": ("the most sensitive layer was", "tour-layers-ratios.png"),
    "before": ("Attack playground", "tour-playground-before-cliff.png"),
    "after": ("Attack playground", "tour-playground-after-cliff.png"),
}


@pytest.mark.timeout(1500)  # five runs (≈ 4 min quiet on 2 cores), then five pages
def test_the_tour_is_one_click_and_then_every_explore_page_shows_data(server, browser):
    """Home → Take the tour → every run done; then each Explore page, opened from the walk-through's links
    on the tour's own runs, draws a plot and offers no 'Fill this view' button (a screenshot each)."""
    from playwright.sync_api import expect

    url, _, _ = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with visit(browser, url, ready="Presets", viewport=WIDE) as page:
        page.get_by_role("button", name="Take the tour").click()
        page.get_by_role("heading", name="The tour").wait_for(timeout=60_000)
        finished = page.get_by_text(
            re.compile(r"^(The cliff on the surface|MRS heat map|Magnitude vs|AP and BAP).* · done")
        )
        expect(finished).to_have_count(5, timeout=900_000)  # each of the five runs ends done
        page.screenshot(path=str(SCREENSHOTS / "tour-home.png"), full_page=True)
    from engine import api

    tour = api.tour(api.open_store(server[2]))
    ids: dict[str, list[Any]] = {view: [] for view in tour.views}
    for view, spec in zip(tour.views, tour.specs):
        ids[view].append(spec.run_id()[:12])
    links = {
        "surface": f"surface?run={ids['surface'][0]}&view=heat+map",
        "layers": f"layers?run={ids['layers'][0]}",
        "transfer": f"transfer?run={ids['layers'][0]}",
        "compare": f"compare?runs={ids['surface'][0]},{ids['compare'][0]}",
        "budget": f"budget?runs={','.join(ids['budget'])}",
        "ratios": f"layers?run={ids['layers'][0]}&view=ratios+at+one+step&step=1",
    }
    collapse = summaries.cliff(api.robust_frame([tour.specs[0].run_id()], flags=True, store=api.open_store(server[2])))
    assert collapse is not None and collapse.free_step is not None  # the Playground's before and after
    for view, step in (("before", collapse.free_step), ("after", collapse.step)):
        links[view] = f"playground?run={ids['surface'][0]}&step={step}&attack=pgd_linf&eps={collapse.eps:g}"
    for view, (text, shot) in TOUR_PAGES.items():
        with visit(browser, f"{url}/{links[view]}", viewport=WIDE) as page:
            page.get_by_text(text).first.wait_for(timeout=60_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            assert page.get_by_role("button", name="Fill this view").count() == 0
            page.screenshot(path=str(SCREENSHOTS / shot), full_page=True)
