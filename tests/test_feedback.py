"""Feedback on answers: the JSONL store (app/feedback.py), the chat's 👍/👎 and comment handlers (scripted engine,
no browser), and `reportqa eval --from-feedback` (eval/feedback.py) with the QA loader's refusal of drafts."""

from __future__ import annotations

import json
import logging
import stat

import gradio as gr
import pytest
from test_app_ui import ScriptedEngine, happy, run

from reportqa.answer.types import Answer, Citation
from reportqa.app import feedback
from reportqa.app.cli import main
from reportqa.app.ui import Chat
from reportqa.eval.runner import QAFormatError, load_qa
from reportqa.version import code_version, package_version

REPORT = "trends-ai-2025"  # the bundled report's name, as `reportqa reports` lists it


@pytest.fixture()
def home(settings, tmp_path):
    return settings.replace(home=tmp_path)


def make_answer(question="How many weekly users did ChatGPT reach?", standalone=None, text="800MM [p. 19].",
                cites=(19,), retrieved=(19, 55), **kw) -> Answer:
    return Answer(question, standalone or question, text, kw.pop("lang", "en"), kw.pop("refused", False),
                  [Citation(p, "800MM by 4/25") for p in cites], [(p, 1.0 - i / 10) for i, p in enumerate(retrieved)],
                  **kw)


def entry(rating="down", question="How many weekly users did ChatGPT reach?", report=REPORT, **kw) -> dict:
    return {**feedback.from_answer(make_answer(question), question, report), "rating": rating, **kw}


def lines(settings) -> list[dict]:
    return [json.loads(x) for x in feedback.path(settings).read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- the store


def test_record_and_read_round_trip(home):
    e = entry("down", comment="wrong year")
    path = feedback.record(home, e)
    assert path == home.home / "feedback" / "feedback.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # questions may be private
    [got] = feedback.read(home)
    for k in ("id", "rating", "comment", "report", "question", "standalone_question", "answer", "lang", "refused",
              "unverified"):
        assert got[k] == e[k], k
    assert got["cited"] == [19] and got["retrieved"] == [19, 55]
    assert got["ts"].endswith("+00:00")
    assert got["commit"] == code_version() and got["version"] == package_version()


def test_a_later_line_of_the_same_answer_supersedes_and_taking_back_removes(home):
    first, second = entry("up"), entry("down", question="What did inference cost?")
    feedback.record(home, first)
    feedback.record(home, second)
    feedback.record(home, {**first, "rating": "down"})
    feedback.record(home, {**first, "rating": "down", "comment": "the figure is from 2024"})
    assert len(lines(home)) == 4  # append-only
    got = feedback.read(home)
    assert [(e["id"], e["rating"], e["comment"]) for e in got] == [(first["id"], "down", "the figure is from 2024"),
                                                                  (second["id"], "down", None)]
    feedback.record(home, {**second, "rating": None})
    assert [e["id"] for e in feedback.read(home)] == [first["id"]]


def test_broken_lines_are_skipped_and_counted(home, caplog):
    feedback.record(home, entry("down"))
    with feedback.path(home).open("a", encoding="utf-8") as f:
        f.write('not json\n{"id": "x", "rating": "meh", "question": "q"}\n[1, 2]\n{"id": "cut short", "rat')
    feedback.record(home, entry("up", question="Second?"))  # after a line cut short: starts a line of its own
    with caplog.at_level(logging.WARNING, logger="reportqa.app.feedback"):
        got = feedback.read(home)
    assert [e["question"] for e in got] == ["How many weekly users did ChatGPT reach?", "Second?"]
    assert "skipped 4 broken lines" in caplog.text


def test_a_huge_comment_with_control_characters_is_cleaned_and_cut(home):
    limit = home.feedback_comment_chars
    feedback.record(home, entry(comment="\x1b[31mred\x07 \u202eevil\x00 " + "x" * (limit * 5)))
    [got] = feedback.read(home)
    assert got["comment"].startswith("[31mred evil ")
    assert not any(c in got["comment"] for c in "\x1b\x07\u202e\x00")
    assert len(got["comment"]) == limit + 1 and got["comment"].endswith("…")
    feedback.record(home, entry(comment=" \x1b\t\n"))  # nothing left: no comment
    assert feedback.read(home)[-1]["comment"] is None


def test_a_bad_rating_is_refused_and_nothing_is_written(home):
    with pytest.raises(ValueError, match="rating"):
        feedback.record(home, entry("meh"))
    assert not feedback.path(home).exists()


# ---------------------------------------------------------------- the chat


def like(index: int, liked) -> gr.LikeData:
    return gr.LikeData(None, {"index": index, "value": ["…"], "liked": liked})


def test_rating_the_second_of_two_answers_records_that_answer(home):
    first = make_answer("How many weekly users did ChatGPT reach?", cites=(19,), retrieved=(19, 55))
    second = make_answer("And in 2024?", standalone="How many weekly users did ChatGPT reach in 2024?",
                         text="Inference costs fell 99% [p. 55].", cites=(55,), retrieved=(55, 7, 19))
    chat = Chat(home, ScriptedEngine(happy(first), happy(second)))
    steps, transcript, turns, _ = run(chat, first.question)
    answers = steps[-1][5]
    _, transcript, _, pending = chat.submit(second.question, transcript, "auto")
    transcript, _, turns, _, _, answers = list(chat.respond(pending, transcript, turns, "auto", answers))[-1]
    # user, thinking, answer, user, thinking, answer; the Chatbot reports a rating with the bubble's first message
    assert [m["role"] for m in transcript] == ["user", "assistant", "assistant"] * 2 and sorted(answers) == [2, 5]

    entry_, box = chat.rate(transcript, answers, like(4, False))
    assert box == gr.update(visible=True, value="")  # a 👎 asks what was wrong
    [got] = feedback.read(home)
    assert got["rating"] == "down" and got["question"] == "And in 2024?"
    assert got["standalone_question"] == "How many weekly users did ChatGPT reach in 2024?"
    assert got["answer"] == second.answer and got["cited"] == [55] and got["retrieved"] == [55, 7, 19]
    assert got["report"] == REPORT and got["id"] == entry_["id"] == answers[5]["id"]

    box, kept = chat.comment("  it answered about costs\x1b ", entry_)
    assert box == gr.update(visible=False, value="") and kept["comment"]
    [got] = feedback.read(home)
    assert got["comment"] == "it answered about costs" and got["question"] == "And in 2024?"

    _, box = chat.rate(transcript, answers, like(1, True))  # the first answer, 👍: the comment box closes
    assert box == gr.update(visible=False, value="")
    assert [(e["question"], e["rating"]) for e in feedback.read(home)] == [
        ("And in 2024?", "down"), ("How many weekly users did ChatGPT reach?", "up")]
    chat.rate(transcript, answers, like(1, ""))  # the 👍 clicked again: taken back
    assert [e["question"] for e in feedback.read(home)] == ["And in 2024?"]


def test_rating_a_message_that_is_not_an_answer_is_a_no_op(home):
    chat = Chat(home, ScriptedEngine(happy(make_answer()), RuntimeError("boom")))
    steps, transcript, turns, _ = run(chat, "How many weekly users did ChatGPT reach?")
    answers = steps[-1][5]
    _, transcript, _, _ = chat.submit("", transcript, "auto")  # a bad question: its warning stays in the chat
    steps, transcript, turns, _ = run(chat, "What else?", transcript, turns)  # the engine fails: a warning
    answers = {**answers, **steps[-1][5]}
    assert sorted(answers) == [2]
    assert [m["role"] for m in transcript] == ["user", "assistant", "assistant", "assistant", "user", "assistant",
                                              "assistant"]
    for index in (0, 3, 4, 5, 6, 99, -1):  # questions, a warning after the answer, the failed turn, out of range
        assert chat.rate(transcript, answers, like(index, False)) == (gr.skip(), gr.skip()), index
    assert chat.rate(transcript, answers, gr.LikeData(None, {"index": [1, 0], "value": "", "liked": False})) == \
        (gr.skip(), gr.skip())  # a two-dimensional index belongs to no chat message
    assert not feedback.path(home).exists()
    assert chat.comment("no rating yet", None) == (gr.update(visible=False, value=""), None)
    assert not feedback.path(home).exists()


@pytest.mark.parametrize("on, options", [(True, ["Like", "Dislike"]), (False, None)])
def test_the_feedback_setting_shows_or_hides_the_buttons(home, on, options):
    from reportqa.app.ui import build_app

    app = build_app(home.replace(feedback=on), ScriptedEngine())
    [chatbot] = [b for b in app.blocks.values() if isinstance(b, gr.Chatbot)]
    assert chatbot.feedback_options == options


def test_new_chat_forgets_the_answers_to_rate(home):
    assert Chat.forget_ratings() == ({}, None, gr.update(visible=False, value=""))


# ---------------------------------------------------------------- reportqa eval --from-feedback


@pytest.fixture()
def votes(home, monkeypatch):
    """A feedback file: two 👎 of one question (spelt differently), a 👍, a 👎 of another question, one of another
    report, and a 👎 that was taken back."""
    monkeypatch.setenv("REPORTQA_HOME", str(home.home))
    feedback.record(home, entry("down", comment="wrong year"))
    feedback.record(home, entry("down", question="  how many WEEKLY users did ChatGPT reach? ", comment="too short"))
    feedback.record(home, entry("up", question="What is Jevons paradox?"))
    feedback.record(home, entry("down", question="英伟达的数据中心收入是多少？"))
    feedback.record(home, entry("down", question="Other report's question?", report="q3-results"))
    withdrawn = entry("down", question="Changed my mind?")
    feedback.record(home, withdrawn)
    feedback.record(home, {**withdrawn, "rating": None})
    return home


def test_eval_from_feedback_drafts_the_down_votes(votes, tmp_path, capsys):
    out = tmp_path / "drafts" / "qa-drafts.jsonl"
    assert main(["eval", "--from-feedback", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"4 down-votes -> 2 drafts for {REPORT}, 1 duplicates skipped, 1 about other reports left out" in err
    items = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [it["question"] for it in items] == ["  how many WEEKLY users did ChatGPT reach? ",
                                                "英伟达的数据中心收入是多少？"]  # the latest 👎 of each question
    first, zh = items
    assert first["draft"] is True and first["needs"] == ["answer", "must_include", "pages", "kind"]
    assert all(first[k] is None for k in first["needs"]) and first["lang"] == "en" and zh["lang"] == "zh"
    assert first["id"].startswith("fb-") and first["id"] != zh["id"]
    fb = first["feedback"]
    assert fb["down_votes"] == 2 and fb["comments"] == ["wrong year", "too short"]
    assert fb["system_answer"] == "800MM [p. 19]." and fb["cited"] == [19] and fb["retrieved"] == [19, 55]
    assert fb["report"] == REPORT and fb["commit"] == code_version()

    # the QA loader refuses a draft with a clear message, and takes it once completed
    with pytest.raises(QAFormatError, match=r"line 1: 'fb-\w+' is a draft: fill in 'answer', 'must_include', "
                                            r"'pages', 'kind' \(docs/qa-set.md\), then delete its 'draft' and 'needs'"):
        load_qa(out)
    done = {k: v for k, v in first.items() if k not in ("draft", "needs")} | {
        "answer": "800MM weekly users.", "must_include": [["800MM"]], "pages": [55], "kind": "numeric"}
    (tmp_path / "qa.jsonl").write_text(json.dumps(done, ensure_ascii=False) + "\n", encoding="utf-8")
    [item] = load_qa(tmp_path / "qa.jsonl")
    assert item.pages == (55,) and item.question == first["question"]


def test_eval_from_feedback_prints_to_stdout(votes, capsys):
    assert main(["eval", "--from-feedback"]) == 0
    out = capsys.readouterr().out
    assert [json.loads(x)["lang"] for x in out.splitlines()] == ["en", "zh"]


def test_eval_from_feedback_without_feedback_drafts_nothing(home, monkeypatch, capsys):
    monkeypatch.setenv("REPORTQA_HOME", str(home.home))
    assert main(["eval", "--from-feedback"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "0 down-votes -> 0 drafts" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--limit", "3"], "--from-feedback takes only --out FILE and --report, not --limit"),
    (["--out", "."], "--out . is a folder"),
])
def test_eval_from_feedback_refuses_bad_arguments(votes, capsys, argv, message):
    assert main(["eval", "--from-feedback", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and captured.out == ""



# ---------------------------------------------------------------- in the browser


@pytest.mark.slow
def test_clicking_dislike_in_the_browser_records_that_answer(settings, tmp_path):
    """The real Chatbot in headless Chromium (scripted engine, so seconds): the 👎 of the second answer reaches
    `Chat.rate` for that answer, and the comment box that then appears adds the comment."""
    from playwright.sync_api import sync_playwright
    from test_app_api import free_port
    from test_browser_chat import CHROMIUM, CHROMIUM_ARGS, QUESTION

    from reportqa.app.ui import build_app, launch

    s = settings.replace(home=tmp_path, port=free_port())
    first = make_answer("First question?", cites=(19,))
    second = make_answer("Second question?", cites=(55,), retrieved=(55, 19))
    app = build_app(s, ScriptedEngine(happy(first), happy(second)))
    launch(app, s, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.goto(f"http://127.0.0.1:{s.port}/")
            pg.wait_for_selector(QUESTION)
            for q in (first.question, second.question):
                pg.fill(QUESTION, q)
                pg.keyboard.press("Enter")
                pg.wait_for_function(f"document.querySelector('{QUESTION}').disabled")
                pg.wait_for_function(f"!document.querySelector('{QUESTION}').disabled", timeout=60_000)
            dislikes = pg.locator("#rq-chat button[aria-label='Dislike']")
            assert dislikes.count() == 2  # one per answer bubble, none on the questions
            assert not pg.locator("#rq-comment textarea").is_visible()
            dislikes.nth(1).click()
            box = pg.locator("#rq-comment textarea")
            box.wait_for(state="visible")
            box.fill("cites the wrong page")
            box.press("Enter")
            box.wait_for(state="hidden")
            browser.close()
    finally:
        app.close()
    rows = lines(s)
    assert [(r["question"], r["rating"], r["comment"]) for r in rows] == [
        ("Second question?", "down", None), ("Second question?", "down", "cites the wrong page")]
    assert rows[0]["cited"] == [55] and rows[0]["retrieved"] == [55, 19] and rows[0]["id"] == rows[1]["id"]
