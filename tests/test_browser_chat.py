"""End to end: `reportqa serve` on the real index with the real bundled LLM, driven in headless Chromium (Debian's
package; scripts/setup.sh --test installs it). Set REPORTQA_SCREENSHOT=<file.png> to save the page after the Chinese
answer (that is how docs/screenshot-chat.png is made)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support import serving  # tests/ is on sys.path (rootdir-relative test modules)

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ANSWER_TIMEOUT_MS = 600_000  # a 1.5B model on 2 shared cores; tests assert behaviour, never speed
QUESTION = "#rq-question textarea"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def server(built_index, tmp_path_factory):
    with serving(built_index.home, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/setup.sh --test)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab on the app that records every request leaving the machine."""
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.outside = []
    pg.on("request", lambda r: pg.outside.append(r.url)
          if not r.url.startswith((server, "data:", "blob:", "about:")) else None)
    pg.goto(server)
    pg.wait_for_selector(QUESTION)
    yield pg
    pg.close()


def ask(pg, question: str) -> str:
    """Ask, check that the page chips arrive and the answer streams before it is done; return the answer's text."""
    pg.fill(QUESTION, question)
    pg.keyboard.press("Enter")
    pg.wait_for_function(f"document.querySelector('{QUESTION}').disabled")
    # retrieval evidence first: page chips under the (still unfinished) answer
    pg.wait_for_function(f"document.querySelector('#rq-chat .options button.option') && "
                         f"document.querySelector('{QUESTION}').disabled", timeout=ANSWER_TIMEOUT_MS)
    # then tokens stream in behind a cursor, still before the answer is done
    pg.wait_for_function(f"document.querySelector('#rq-chat').innerText.includes('▍') && "
                         f"document.querySelector('{QUESTION}').disabled", timeout=ANSWER_TIMEOUT_MS)
    pg.wait_for_function(f"!document.querySelector('{QUESTION}').disabled", timeout=ANSWER_TIMEOUT_MS)
    return pg.locator("#rq-chat .bot-row .message-content").last.inner_text()


def cited_pages(pg) -> list[int]:
    return [int(t.split()[-1]) for t in pg.locator("#rq-chat button.option").all_inner_texts() if t.startswith("✓")]


def test_english_and_chinese_answers_cite_pages_that_open_in_the_viewer(page):
    answer = ask(page, "How many weekly active users did ChatGPT reach?")
    assert "▍" not in answer and re.search(r"\d", answer), answer
    pages = cited_pages(page)
    assert pages, answer
    assert all(f"p. {p}" in answer for p in pages)  # citation badges in the text match the chips

    page.locator("#rq-chat button.option").first.click()
    view = page.locator(f"#rq-page [data-page='{pages[0]}']")
    view.wait_for()
    en, zh = (view.locator(f".rq-col[lang={lang}] .rq-text").inner_text() for lang in ("en", "zh"))
    assert len(en) > 40 and CJK.search(zh), (en, zh)
    assert view.locator("mark").count() > 0  # the supporting passage is highlighted

    answer_zh = ask(page, "ChatGPT 的每周活跃用户有多少？")  # second turn of the same conversation
    assert len(CJK.findall(answer_zh)) >= 5 and re.search(r"p\. \d+", answer_zh), answer_zh
    pages = cited_pages(page)
    assert pages
    page.locator("#rq-chat button.option").first.click()
    page.locator(f"#rq-page [data-page='{pages[0]}'] mark").first.wait_for()
    if os.environ.get("REPORTQA_SCREENSHOT"):
        page.mouse.move(0, 0)  # no hover effect on the picture
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=os.environ["REPORTQA_SCREENSHOT"])
    assert page.outside == []

    page.click("#rq-new")
    page.wait_for_function("!document.querySelector('#rq-chat .bot-row')")  # a new, empty conversation


def test_a_follow_up_shows_the_question_it_was_answered_as(page):
    """A two-turn conversation in the real chat: the follow-up's answer opens with the standalone question the
    engine used (no rule writes "Over how many months?" out, so it is the earlier question with its words added,
    answered after the earlier turn), and the conversation stays on screen."""
    first = ask(page, "How many weekly active users did ChatGPT have in April 2025?")
    assert "▍" not in first and not first.startswith("Answering"), first
    answer = ask(page, "Over how many months?")
    shown = answer.splitlines()[0]
    assert shown.startswith("Answering: ") and "weekly active users" in shown and "over how many months" in shown, \
        answer
    assert len(answer.splitlines()) > 1 and "▍" not in answer, answer  # an answer (or refusal) below the line
    assert page.locator("#rq-chat .user-row").count() == 2 and page.locator("#rq-chat .bot-row").count() == 2
    assert page.outside == []


def test_html_and_markdown_in_a_question_render_inert(page):
    nasty = ('<img src="http://203.0.113.7/x.png" onerror="window.__pwned=1"><script>window.__pwned=2</script> '
             'What does the report say about ![chart](http://203.0.113.7/chart.png) **AI** adoption?')
    page.fill(QUESTION, nasty)
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('{QUESTION}').disabled")
    page.wait_for_function(f"!document.querySelector('{QUESTION}').disabled", timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#rq-chat .user-row").first.inner_text().strip() == nasty  # shown exactly as typed
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#rq-chat img").count() == 0
    assert page.locator("#rq-chat script, #rq-chat a[href*='203.0.113.7']").count() == 0
    assert page.outside == []
