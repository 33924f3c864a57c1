"""Unit tests of the web chat's rendering, validation and error paths, with a scripted engine (no LLM, no browser).
The real app is driven in tests/test_browser_chat.py and tests/test_app_api.py."""

from __future__ import annotations

import re
import threading
import time

import gradio as gr
import pytest
from gradio_client import Client
from gradio_client.utils import Status
from markdown_it import MarkdownIt
from test_app_api import free_port

from reportqa.answer.types import Answer, Citation, Evidence, Final, Token
from reportqa.app import render
from reportqa.app.ui import Chat, build_app, launch
from reportqa.errors import UserError
from reportqa.ingest import PageRecord

MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])  # what the chat's renderer understands, minus HTML
NASTY = [
    "<script>alert(1)</script>",
    '<img src="http://evil.example/x.png" onerror="alert(1)">',
    "![tracker](http://evil.example/pixel.png)",
    "![ref][r]\n\n[r]: http://evil.example/p.png",
    "[click](javascript:alert(1))",
    "<http://evil.example/>",
    "`code` and ```fenced```\n\n    indented code &lt;",
    "**bold** _it_ ~~strike~~ | a | b |\n|---|---|\n| 1 | 2 |",
    "&lt;script&gt; &amp; &#60;b&#62;",
]
PAGES = {
    19: PageRecord(19, "ChatGPT Weekly Active Users\n800MM by 4/25,\nup 8x in 17 months <b>x</b>",
                   "ChatGPT 每周活跃用户\n到 2025 年 4 月达 8 亿", "AI usage"),
    55: PageRecord(55, "Inference costs per token fell 99%", "每个 Token 的推理成本下降 99%", "Costs"),
}


class Retriever:
    def page(self, n: int) -> PageRecord | None:
        return PAGES.get(n)


class ScriptedEngine:
    """Plays back a list of events (or raises), recording what the UI passed in."""

    def __init__(self, *scripts):
        self.scripts = list(scripts)
        self.calls: list[tuple] = []
        self.retriever = Retriever()

    def stream(self, question, history=None, lang=None):
        self.calls.append((question, history, lang))
        script = self.scripts.pop(0)
        if isinstance(script, BaseException):
            raise script
        yield from script

    def ask(self, question, history=None, lang=None):
        return next(ev.answer for ev in self.stream(question, history, lang) if isinstance(ev, Final))


def answer(text="ChatGPT reached 800MM weekly users [p. 19].", cites=((19, "800MM by 4/25, up 8x"),),
           retrieved=(19, 55), **kw) -> Answer:
    return Answer("q", "q", text, kw.pop("lang", "en"), kw.pop("refused", False), [Citation(p, q) for p, q in cites],
                  [(p, 1.0 - i / 10) for i, p in enumerate(retrieved)], **kw)


def happy(a: Answer | None = None):
    a = a or answer()
    return [Evidence([p for p, _ in a.retrieved]), Token("ChatGPT reached "), Token("800MM [p. 19]."), Final(a)]


def run(chat: Chat, question: str, transcript=None, turns=None, lang="auto"):
    """Submit then respond, as the UI chains them; returns every yield of respond and the final state."""
    _, transcript, _, pending = chat.submit(question, transcript or [], lang)
    steps = list(chat.respond(pending, transcript, turns or [], lang))
    transcript, _, turns, quotes, *_ = steps[-1]
    return steps, transcript, turns, quotes


def text_of(transcript) -> str:
    return "\n".join(m["content"] for m in transcript)


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("text", NASTY)
def test_inert_markdown_renders_no_markup(text):
    out = MD.render(render.inert(text))
    tags = set(re.findall(r"<(\w+)", out)) - {"p", "br"}
    assert not tags, (text, out)
    assert "&lt;" in out or "<" not in text  # angle brackets survive as text, not as tags


def test_inert_keeps_the_visible_text():
    text = "Revenue $3.7B (+66% Y/Y) - see note *1 [p. 12] 营收增长"
    shown = re.sub(r"<[^>]+>", "", MD.render(render.inert(text))).strip()
    assert shown == text


def test_inert_drops_control_and_bidi_characters():
    assert render.inert("a\x07b\u202ec") == "abc"


def test_answer_markdown_turns_citations_into_badges():
    out = MD.render(render.answer_markdown("Up 8x [p. 19][p. 55]. <b>no</b>"))
    assert re.findall(r"<code>(.*?)</code>", out) == ["p. 19", "p. 55"]
    assert "<b>" not in out


def test_page_chips_put_cited_pages_first_and_mark_them():
    chips = render.page_chips(answer(cites=((55, "x"),), retrieved=(19, 55, 7)), [19, 55, 7])
    assert [c["value"] for c in chips] == ["55", "19", "7"]
    assert chips[0]["label"].startswith("✓") and not chips[1]["label"].startswith("✓")


@pytest.mark.parametrize("question, key", [("", "empty"), ("   \n", "empty"), ("x" * 101, "long"),
                                           ("why\x00", "control"), ("ab\u202ecd", "control")])
def test_check_question_rejects_bad_questions(question, key):
    with pytest.raises(render.BadQuestion) as e:
        render.check_question(question, 100, "en")
    assert str(e.value) == render.message(key, "en", n=len(question.strip()), max=100)


def test_check_question_accepts_and_strips():
    assert render.check_question("  多少用户？\n", 100, "zh") == "多少用户？"


def test_messages_follow_the_question_language():
    assert render.ui_lang("有多少用户？", "auto") == "zh"
    assert render.ui_lang("How many?", "auto") == "en"
    assert render.ui_lang("How many?", "zh") == "zh"


def test_highlight_matches_across_line_breaks_and_languages():
    page = PAGES[19]
    en = render.highlighted_html(page.en, ["800MM by 4/25, up 8x in 17 months"])
    assert "<mark>800MM by 4/25,\nup 8x in 17 months</mark>" in en
    zh = render.highlighted_html(page.zh, ["到2025年4月达8亿"])  # the quote lost the spaces the page has
    assert "<mark>到 2025 年 4 月达 8 亿</mark>" in zh


def test_highlight_ignores_short_fragments():
    assert render.highlight_spans("2024 and 2025", ["2024."]) == []


def test_page_html_escapes_report_text_and_shows_both_languages():
    out = render.page_html(19, PAGES[19], ["Weekly Active Users"])
    assert "<b>x</b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert 'lang="en"' in out and 'lang="zh"' in out and "8 亿" in out
    assert "<mark>Weekly Active Users</mark>" in out
    assert "not in the report" in render.page_html(999, None)


# ---------------------------------------------------------------- chat flow


@pytest.mark.parametrize("unverified, title", [(False, "The report does not answer this"),
                                                 (True, "Could not verify an answer")])
def test_the_thinking_line_tells_a_refusal_from_an_answer_that_could_not_be_verified(settings, unverified, title):
    a = answer("…", cites=(), refused=True, unverified=unverified)
    _, transcript, _, _ = run(Chat(settings, ScriptedEngine([Evidence([19, 55]), Final(a)])), "How many users?")
    assert transcript[-2]["metadata"]["title"].startswith(title)




def test_pages_show_before_tokens_and_answer_is_recorded(settings):
    engine = ScriptedEngine(happy())
    steps, transcript, turns, quotes = run(Chat(settings, engine), "How many users? <script>x</script>")
    evidence_step = steps[1][0]  # the yield right after Evidence, before any token
    assert [c["value"] for c in evidence_step[-1]["options"]] == ["19", "55"]
    assert not any("ChatGPT" in m["content"] for m in evidence_step)
    assert any("▍" in s[0][-1]["content"] for s in steps[2:-1])  # tokens stream with a cursor
    user, thought, reply = transcript
    assert "<script>" not in user["content"] and "&lt;script&gt;" in user["content"]
    assert thought["metadata"]["status"] == "done" and "19" in thought["metadata"]["title"]
    assert reply["content"] == render.answer_markdown(answer().answer)
    assert reply["options"][0] == {"label": "✓ p. 19", "value": "19"}
    assert turns == [("How many users? <script>x</script>", answer().answer)]
    assert quotes == {19: ["800MM by 4/25, up 8x"]}


def test_history_is_passed_to_the_engine(settings):
    engine = ScriptedEngine(happy(), happy())
    chat = Chat(settings, engine)
    _, transcript, turns, _ = run(chat, "How many users?", lang="en")
    run(chat, "And in 2024?", transcript, turns, lang="en")
    assert engine.calls[1] == ("And in 2024?", [("How many users?", answer().answer)], "en")


@pytest.mark.parametrize("question, understood, lang, line", [
    ("And Google?", "What was Google's capex in 2024?", "en", "*Answering: What was Google's capex in 2024?*"),
    ("那2023年呢？", "2023年六大科技公司的资本支出是多少？", "zh", "*正在回答：2023年六大科技公司的资本支出是多少？*"),
])
def test_a_rewritten_follow_up_shows_what_was_answered(settings, question, understood, lang, line):
    a = answer(lang=lang)
    a.question, a.standalone_question = question, understood
    _, transcript, turns, _ = run(Chat(settings, ScriptedEngine(happy(a))), question)
    reply = transcript[-1]["content"]
    assert reply.startswith(line + "\n\n") and reply.endswith(render.answer_markdown(a.answer))
    assert turns == [(question, a.answer)]  # the history keeps the answer alone


def test_a_question_answered_in_parts_shows_the_part_written_out(settings):
    a = answer(lang="zh")
    a.question = a.standalone_question = "OpenAI的年化收入是多少？Anthropic呢？"
    a.parts = ["OpenAI的年化收入是多少？", "Anthropic的年化收入是多少？"]
    _, transcript, _, _ = run(Chat(settings, ScriptedEngine(happy(a))), a.question)
    assert transcript[-1]["content"].startswith("*正在回答：OpenAI的年化收入是多少？Anthropic的年化收入是多少？*")
    a.parts = ["OpenAI的年化收入是多少？", "Anthropic呢？"]  # nothing written out: no line
    _, transcript, _, _ = run(Chat(settings, ScriptedEngine(happy(a))), a.question)
    assert "正在回答" not in transcript[-1]["content"]


def test_no_answering_line_when_the_question_stood_alone(settings):
    a = answer()
    a.question = a.standalone_question = "How many users does ChatGPT have?"
    _, transcript, _, _ = run(Chat(settings, ScriptedEngine(happy(a))), a.question)
    assert "Answering" not in transcript[-1]["content"]


def test_the_answering_line_is_inert(settings):
    a = answer()
    a.question, a.standalone_question = "And it?", "What about <img src=x onerror=alert(1)> *bold*?"
    _, transcript, _, _ = run(Chat(settings, ScriptedEngine(happy(a))), a.question)
    line = transcript[-1]["content"].split("\n\n")[0]
    assert "<img" not in MD.render(line) and "<strong>" not in MD.render(line) and "<em>Answering:" in MD.render(line)


@pytest.mark.parametrize("failure, shown", [
    (UserError("The index is missing: run `reportqa ingest`."), "The index is missing"),
    (RuntimeError("CUDA exploded at 0xdeadbeef"), render.message("failed", "en")),
])
def test_engine_failures_become_short_messages_and_keep_the_conversation(settings, failure, shown):
    chat = Chat(settings, ScriptedEngine(happy(), failure))
    _, transcript, turns, _ = run(chat, "How many users?")
    _, after, turns_after, _ = run(chat, "And costs?", transcript, turns)
    assert after[:3] == transcript  # earlier turn untouched
    assert shown in after[-1]["content"] and "Traceback" not in text_of(after) and "0xdeadbeef" not in text_of(after)
    assert after[-2]["metadata"]["status"] == "done"  # the thinking indicator stops
    assert turns_after == turns  # the failed turn is not history


def test_llm_error_answer_is_flagged_and_not_history(settings):
    a = answer("The language model is not available right now. The most relevant pages are p. 19.", cites=(),
               error="connection refused")
    _, transcript, turns, _ = run(Chat(settings, ScriptedEngine([Evidence([19, 55]), Final(a)])), "How many users?")
    assert transcript[-1]["content"].startswith("⚠️") and [c["value"] for c in transcript[-1]["options"]] == ["19", "55"]
    assert turns == []


def test_bad_question_is_answered_in_the_chat_without_the_engine(settings):
    engine = ScriptedEngine()
    chat = Chat(settings, engine)
    box, transcript, _, pending = chat.submit("問題\x1b[31m", [], "auto")
    assert pending is None and transcript[-1]["content"] == "⚠️ " + render.message("control", "zh")
    assert box == gr.update()  # the question stays in the box to be fixed
    assert list(chat.respond(pending, transcript, [], "auto"))[-1][4] == gr.update(interactive=True)
    assert engine.calls == []


def test_missing_index_is_a_message_in_the_chat(tmp_path, settings):
    chat = Chat(settings.replace(home=tmp_path))  # no index there: the engine cannot be built
    _, transcript, _, _ = run(chat, "How many users?")
    assert transcript[-1]["content"].startswith("⚠️") and "index" in transcript[-1]["content"].lower()
    assert "index" in chat.page_view(19).lower()


def test_busy_gives_the_question_back(settings):
    chat = Chat(settings, ScriptedEngine())
    _, transcript, _, pending = chat.submit("How many users?", [], "en")
    transcript, _, box = chat.busy(pending, transcript, "en")
    assert transcript[-1]["content"] == "⚠️ " + render.inert(render.message("busy", "en"))
    assert transcript[-2]["metadata"]["status"] == "done"
    assert box["value"] == "How many users?" and box["interactive"] is True
    assert chat.busy(None, [], "en")[:2] == (gr.skip(), gr.skip())  # cancelled by "new chat": nothing to report


def test_page_viewer_opens_chips_and_steps(settings):
    chat = Chat(settings, ScriptedEngine())
    n, html = chat.open_chip({19: ["800MM by 4/25"]}, gr.SelectData(None, {"index": 0, "value": {"value": "19"}}))
    assert n == "19" and "<mark>800MM by 4/25</mark>" in html
    assert chat.open_page("19", {}, +1)[0] == "20"
    assert chat.open_page("abc", {})[1] == render.page_html(None, None)


def test_api_returns_the_documented_fields(settings):
    chat = Chat(settings, ScriptedEngine(happy()))
    out = chat.ask("How many users?", "auto", [["Hi", "Hello"]])
    assert set(out) == {"answer", "lang", "refused", "citations", "retrieved", "error"}
    assert out["citations"] == [{"page": 19, "quote": "800MM by 4/25, up 8x"}]
    with pytest.raises(gr.Error):
        chat.ask("   ")


def test_build_app_exposes_only_the_ask_endpoint(settings):
    info = build_app(settings, ScriptedEngine()).get_api_info()
    assert list(info["named_endpoints"]) == ["/ask"]


def test_launch_refuses_half_configured_auth(settings):
    with pytest.raises(UserError, match="auth_password"):
        launch(build_app(settings, ScriptedEngine()), settings.replace(auth_user="me"))


def wait_until(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_generations_run_one_at_a_time_in_order_and_overflow_is_refused(settings):
    """Through the real gradio queue: one generation at a time, first come first served, and a full queue
    (settings.queue_size waiting) refuses more instead of growing."""
    gate = threading.Event()

    class Gated(ScriptedEngine):
        def stream(self, question, history=None, lang=None):
            self.calls.append(question)
            assert gate.wait(60) and len(self.calls) - len(self.done) == 1, "two generations at once"
            self.done.append(question)
            yield from happy()

    s = settings.replace(port=free_port(), queue_size=1)
    engine = Gated()
    engine.done = []
    app = build_app(s, engine)
    launch(app, s, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{s.port}/", verbose=False)
        first = client.submit(question="first", api_name="/ask")
        wait_until(lambda: engine.calls == ["first"])  # running, holding the one generation slot
        second = client.submit(question="second", api_name="/ask")
        wait_until(lambda: second.status().code == Status.IN_QUEUE)  # waiting: the queue is now full
        third = client.submit(question="third", api_name="/ask")
        with pytest.raises(Exception, match="(?i)queue is full"):
            third.result(timeout=60)
        gate.set()
        assert first.result(timeout=60)["citations"][0]["page"] == 19
        assert second.result(timeout=60)["citations"][0]["page"] == 19
    finally:
        gate.set()
        app.close()
    assert engine.done == ["first", "second"]
