"""The real panel in a real headless browser (Debian's chromium driven by Playwright; no browser download).

Each step is checked where it matters: on the output frames the pipeline sends, not only on the page.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from panel_helpers import Harness, face_box, nearest, reference_swaps, start_harness

CHROMIUM = os.environ.get("SWAPCAM_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: `make browser` installs Debian's chromium (as root)"),
]


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory, models_root: Path,
          sample: Callable[[str], Path]) -> Iterator[Harness]:
    harness = start_harness(tmp_path_factory.mktemp("browser"), models_root, sample)
    yield harness
    harness.stop()


@pytest.fixture(scope="module")
def page(panel: Harness) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install .[dev])")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(20_000)
        page.goto(panel.url)
        page.wait_for_selector(".face")
        yield page
        browser.close()


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_the_token_url_leaves_a_clean_address_and_a_working_page(page: Any, panel: Harness) -> None:
    assert page.url.rstrip("/") == f"http://127.0.0.1:{panel.port}"
    page.wait_for_function("document.getElementById('figures').children.length > 0")
    assert "stamped-still" in page.inner_text("#io")


def test_the_preview_updates(page: Any) -> None:
    page.wait_for_function("document.getElementById('out').naturalWidth > 0")
    first = page.locator("#out").screenshot()
    wait_until(lambda: page.locator("#out").screenshot() != first, timeout=10)


def test_the_live_chart_updates_twice_a_second(page: Any) -> None:
    page.wait_for_function("document.getElementById('figures').children.length > 0")
    before = page.evaluate("state.history.length")
    time.sleep(1.1)
    assert page.evaluate("state.history.length") - before >= 2


def test_upload_then_click_switches_the_face_in_the_output(page: Any, panel: Harness,
                                                           sample: Callable[[str], Path]) -> None:
    solvay = sample("solvay_conference_1927.jpg")
    page.set_input_files("#file", str(solvay))
    page.wait_for_function("document.querySelectorAll('.face').length === 2")
    new_id = page.eval_on_selector_all(".face", "els => els.map(e => e.dataset.id)")[1]
    refs = reference_swaps({"gauss": sample("gauss.png"), "solvay": solvay}, panel.source.base, panel.analyzer)
    box = face_box(panel)
    assert nearest(panel.frame_after_change()[1], refs, box) == "gauss"
    page.click(f".face[data-id='{new_id}']")
    wait_until(lambda: panel.controller.options.face == new_id)
    page.wait_for_selector(f".face.live[data-id='{new_id}']")
    assert nearest(panel.frame_after_change()[1], refs, box) == "solvay"


def test_the_swap_button_makes_the_output_equal_the_input(page: Any, panel: Harness) -> None:
    page.click("#swap")
    wait_until(lambda: panel.controller.options.swap is False)
    page.wait_for_function("document.getElementById('swap').textContent === 'swap OFF'")
    seq, image = panel.frame_after_change()
    assert np.array_equal(image, panel.source.expected(seq))
    page.click("#swap")
    wait_until(lambda: panel.controller.options.swap is True)
    seq, image = panel.frame_after_change()
    assert not np.array_equal(image, panel.source.expected(seq))


def test_recording_start_stop_gives_a_playable_file(page: Any, panel: Harness) -> None:
    page.click("#rec")
    wait_until(lambda: panel.recorder.active)
    panel.capture.after(panel.capture.latest_seq() + 15)
    page.click("#rec")
    wait_until(lambda: not panel.recorder.active)
    assert panel.recorder.path is not None
    page.wait_for_function("document.getElementById('rec-info').textContent.includes('MB')")
    with av.open(str(panel.recorder.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 10


def test_an_option_that_fails_shows_the_coded_error_and_keeps_the_state(page: Any, panel: Harness) -> None:
    from realtime.swappers.inswapper import neural_models_present

    if neural_models_present():
        pytest.skip("the neural models are here, so switching to inswapper does not fail")
    page.select_option("select[name=swapper]", "inswapper")
    page.wait_for_function("document.getElementById('messages').textContent.includes('E06 ')")
    assert panel.controller.options.swapper == "mesh"
    page.wait_for_function("document.querySelector('select[name=swapper]').value === 'mesh'")


def test_the_dock_layout_fits_a_narrow_panel(page: Any) -> None:
    page.set_viewport_size({"width": 360, "height": 900})
    try:
        wide = page.evaluate("""[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > 361)
            .map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)""")
        assert not wide
        columns = page.evaluate("getComputedStyle(document.querySelector('main')).gridTemplateColumns")
        assert len(columns.split()) == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
    finally:
        page.set_viewport_size({"width": 1280, "height": 860})


def test_the_preview_rate_lowers_or_stops_the_stream_and_is_remembered(page: Any, panel: Harness) -> None:
    slot = panel.processor.preview
    assert slot is not None
    page.wait_for_function("document.getElementById('out').naturalWidth > 0")
    try:
        page.select_option("#preview-rate", "0")
        wait_until(lambda: slot.streams == 0, timeout=10)  # off: the server encodes nothing for this page
        assert not page.get_attribute("#out", "src")
        page.select_option("#preview-rate", "5")
        wait_until(lambda: slot.streams == 1, timeout=10)
        assert "fps=5" in (page.get_attribute("#out", "src") or "")
        page.reload()
        page.wait_for_selector(".face")
        assert page.input_value("#preview-rate") == "5"
        page.wait_for_function("document.getElementById('out').naturalWidth > 0")
    finally:
        page.select_option("#preview-rate", "15")
    wait_until(lambda: slot.streams == 1 and "fps=15" in (page.get_attribute("#out", "src") or ""), timeout=10)
