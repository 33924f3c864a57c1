"""End to end: a second, real PDF that nobody here wrote is uploaded through the chat in headless Chromium, ingested
with a progress bar, picked and asked about with the real engine and the bundled LLM; the cited page is the PDF's
physical page and opens in the viewer. Bad files uploaded the same way get one message and leave the library as it
was. Set REPORTQA_SCREENSHOT=<file.png> to save the picker open over the answer (docs/screenshot-library.png)."""

from __future__ import annotations

import os
import time

import pytest
from test_app_library import _encrypted_pdf
from test_browser_chat import ANSWER_TIMEOUT_MS, QUESTION, ask, browser, cited_pages, serving  # noqa: F401
from test_library import REAL_PDF

pytestmark = pytest.mark.slow

NAME = "shared-mime-info-spec"
TITLE = "Shared MIME-info Database"
# Physical page 16 of the PDF (`reportqa pages FILE`) is the only one that says how mount points are detected
# ("comparing the 'st_dev' of a directory with that of its parent"); it prints no page number of its own.
QUESTION_TEXT = "How can a mount point directory be detected?"
PAGE, PAGE_TEXT = 16, "st_dev"
STATUS = "#rq-library-status .rq-upload"
INGEST_TIMEOUT_MS = 900_000  # embedding 51 chunks on 2 shared cores; tests assert behaviour, never speed


@pytest.fixture(scope="module")
def home(built_index, tmp_path_factory):
    """A home of its own for the library, reusing the test home's built index of the default report and its model
    (symlinks: nothing is rebuilt, nothing is written there)."""
    home = tmp_path_factory.mktemp("library-home")
    (home / "index").symlink_to(built_index.index_dir.resolve())
    (home / "models").symlink_to(built_index.model_dir.resolve())
    return home


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    with serving(home, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


def upload(pg, files) -> None:
    with pg.expect_file_chooser() as chooser:
        pg.click("#rq-upload")
    chooser.value.set_files(files)


def reports(pg, n: int = 1) -> list[str]:
    """The picker's entries, once there are at least n (opening it)."""
    pg.click("#rq-report input")
    options = pg.locator("#rq-report [data-testid=dropdown-option]")
    options.nth(n - 1).wait_for()
    return [x.strip().removeprefix("✓").strip() for x in options.all_inner_texts()]


def folders(home) -> list[str]:
    return sorted(p.name for p in (home / "reports").glob("*"))


def test_a_real_pdf_is_uploaded_picked_and_answered_with_its_physical_pages(browser, server, home):  # noqa: F811
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.goto(server)
    pg.wait_for_selector(QUESTION)
    before = folders(home)

    for name, data, message in [("empty.pdf", b"", "the file is empty"),
                                ("notes.pdf", b"\x89PNG\r\n\x1a\n\x00\x00 an image", "not a PDF or a UTF-8 text"),
                                ("locked.pdf", _encrypted_pdf(), "the PDF is encrypted")]:
        upload(pg, {"name": name, "mimeType": "application/pdf", "buffer": data})
        failed = pg.locator(f"{STATUS}[data-state=failed]")
        failed.filter(has_text=name).wait_for(timeout=60_000)
        assert message in failed.inner_text()
        assert folders(home) in (before, [".library.lock"])  # nothing but the library's lock file
    assert reports(pg) == ["Trends – Artificial Intelligence (trends-ai-2025)"]
    pg.keyboard.press("Escape")

    upload(pg, str(REAL_PDF))
    pg.locator(f"{STATUS}[data-state=running] progress").wait_for(timeout=60_000)  # the progress bar
    seen = set()
    deadline = time.monotonic() + INGEST_TIMEOUT_MS / 1000
    while not pg.locator(f"{STATUS}[data-state=done]").count():
        assert not pg.locator(f"{STATUS}[data-state=failed]").count(), pg.locator(STATUS).inner_text()
        assert time.monotonic() < deadline, "the upload did not finish"
        bar = pg.locator(f"{STATUS} progress")
        if bar.count():
            seen.add(float(bar.get_attribute("value")))
        time.sleep(0.5)
    assert len(seen) >= 2, seen  # the bar moved
    assert TITLE in pg.locator(STATUS).inner_text()
    # the uploader's picker selected the new report, and the chat switched to it
    pg.wait_for_function(f"document.querySelector('#rq-report input').value.includes('{NAME}')")
    pg.locator(".rq-header", has_text=TITLE).wait_for()

    answer = ask(pg, QUESTION_TEXT)
    assert PAGE in cited_pages(pg), (answer, cited_pages(pg))
    assert f"p. {PAGE}" in answer
    pg.locator("#rq-chat button.option", has_text=f"p. {PAGE}").first.click()
    view = pg.locator(f"#rq-page [data-page='{PAGE}']")
    view.wait_for()
    assert PAGE_TEXT in view.inner_text() and TITLE in view.inner_text()

    other = browser.new_page(viewport={"width": 1400, "height": 900})  # another user, arriving now
    other.goto(server)
    other.wait_for_selector(QUESTION)
    assert other.locator("#rq-report input").input_value().endswith("(trends-ai-2025)")  # still the default
    assert f"{TITLE} ({NAME})" in reports(other, 2)
    other.close()

    if os.environ.get("REPORTQA_SCREENSHOT"):
        reports(pg, 2)  # the picker open over the answer and its page
        pg.mouse.move(700, 860)
        pg.evaluate("window.scrollTo(0, 0)")
        pg.screenshot(path=os.environ["REPORTQA_SCREENSHOT"])
    pg.close()
