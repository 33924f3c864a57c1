"""The chat's report library (app/ui.py `Chat`, app/uploads.py): the upload handler, the report picker and the
loopback/password rule, driven without a browser; `library.remove_report` and `reportqa remove`. Real embedder and
Chroma on temporary homes; answers come from a scripted engine (the real app is in tests/test_browser_library.py)."""

from __future__ import annotations

import html
import io
import json
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from pypdf import PdfWriter
from support import private_home
from test_app_ui import ScriptedEngine, happy, run
from test_library import EN_PAGES, _text_export, library_state

from reportqa.app import render
from reportqa.app.cli import main
from reportqa.app.ui import Chat, build_app
from reportqa.app.uploads import Job, upload_allowed
from reportqa.errors import UserError
from reportqa.index import library
from reportqa.settings import load_settings

WIDGETS = "widgets"


def wait_for(chat: Chat, job_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not chat.uploads.get(job_id).finished:
        assert time.monotonic() < deadline, "the upload did not finish"
        time.sleep(0.1)


def upload(chat: Chat, path: Path) -> tuple[str, object]:
    """Upload as the UI does (start, then poll until done); returns the last status line and picker update."""
    job, status, _ = chat.start_upload(str(path), None)
    if job is None:  # refused at once
        return status, None
    wait_for(chat, job)
    status, timer, picker = chat.poll_upload(job, None)
    assert timer == gr.update(active=False)  # polling stops
    return status, picker


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A home whose library holds one added report, `widgets` (a 4-page English text export)."""
    home = tmp_path_factory.mktemp("app-library")
    source = home.parent / "widgets.txt"
    source.write_text(_text_export(EN_PAGES, "head"), encoding="utf-8")
    library.add_report(load_settings(home=home), source, WIDGETS)
    return home


@pytest.fixture
def lib(tmp_path, home):
    return private_home(tmp_path, home)


def _encrypted_pdf() -> bytes:
    w = PdfWriter()
    w.add_blank_page(200, 200)
    w.encrypt(user_password="secret", owner_password="owner")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


BAD = [  # (file name, content, what the one line says)
    ("slides.pdf", b"PK\x03\x04\x14\x00\x06\x00\x08\x00\xff\xfe binary, a zip archive", "not a PDF or a UTF-8 text"),
    ("locked.pdf", _encrypted_pdf(), "the PDF is encrypted"),
    ("empty.pdf", b"", "the file is empty"),
    ("big.pdf", b"%PDF-1.7\n" + b"0" * 2**20, "the limit is 1 MB"),
    ("notes.txt", b"Plain prose without any page numbers.\n", "no page numbers"),
    ("widgets.pdf", b"%PDF-1.7\n%%EOF\n", "already in the library"),
    ("fake.pdf", b"%PDF-1.7\nnot really a PDF at all\n", "the PDF is truncated or damaged"),
]


@pytest.mark.parametrize("file, data, message", BAD, ids=[b[0] for b in BAD])
def test_a_file_that_is_not_a_readable_report_gets_one_message_and_changes_nothing(lib, tmp_path, file, data,
                                                                                    message):
    chat = Chat(lib.replace(max_upload_mb=1), ScriptedEngine())
    before = library_state(lib), library.list_reports(lib)
    path = tmp_path / "upload" / file
    path.parent.mkdir()
    path.write_bytes(data)
    status, picker = upload(chat, path)
    assert 'data-state="failed"' in status and message in status and status.count("⚠️") == 1, status
    assert "Traceback" not in status and (picker is None or picker == gr.skip())
    assert (library_state(lib), library.list_reports(lib)) == before
    assert not list((lib.home / "reports").glob(".new-*"))


def test_the_file_type_comes_from_the_content_not_the_name(lib, tmp_path):
    """A text export named .pdf is read as text, and a PDF named .txt as a PDF: here, the export is added."""
    path = tmp_path / "gadgets.pdf"
    path.write_text(_text_export(EN_PAGES, "foot"), encoding="utf-8")
    chat = Chat(lib, ScriptedEngine())
    status, picker = upload(chat, path)
    assert 'data-state="done"' in status and "Annual Widget Market Review" in status, status
    assert picker["value"] == "gadgets" and ("Annual Widget Market Review (gadgets)", "gadgets") in picker["choices"]
    assert library.select(lib, "gadgets").report.name == "source.txt"
    assert [r["name"] for r in library.list_reports(lib)] == ["trends-ai-2025", "gadgets", WIDGETS]


def test_an_upload_is_ingested_while_the_generation_queue_is_held(lib, tmp_path):
    """The ingest does not take a turn in the queue: with an answer being generated (the turn held), it finishes."""
    chat = Chat(lib, ScriptedEngine())
    path = tmp_path / "Gadget Review.txt"
    path.write_text(_text_export(EN_PAGES, "head"), encoding="utf-8")
    held, release = threading.Event(), threading.Event()

    def generate():
        with chat.service.queue.turn():
            held.set()
            release.wait(300)

    t = threading.Thread(target=generate)
    t.start()
    try:
        assert held.wait(10)
        status, picker = upload(chat, path)
    finally:
        release.set()
        t.join(10)
    assert picker["value"] == "gadget-review" and "gadget-review" in library.names(lib)


def test_progress_is_reported_through_add_report(tmp_path):
    seen = []
    source = tmp_path / "w.txt"
    source.write_text(_text_export(EN_PAGES, "head"), encoding="utf-8")
    library.add_report(load_settings(home=tmp_path / "home"), source, "w", progress=lambda *a: seen.append(a))
    steps = [s for s, _, _ in seen]
    assert steps[0] == "reading" and steps[-1] == "examples" and "embedding" in steps
    embedding = [(d, t) for s, d, t in seen if s == "embedding"]
    assert embedding[0][0] == 0 and embedding[-1][0] == embedding[-1][1] > 0  # from none to all chunks


def test_the_progress_bar_advances_and_escapes_the_file_name(lib):
    chat = Chat(lib, ScriptedEngine())
    job = Job('<img src=x onerror="alert(1)">.pdf', "x")
    chat.uploads._jobs["j"] = job
    job.progress("embedding", 10, 40)
    first = job.fraction
    line = chat.poll_upload("j", None)[0]
    assert 'data-state="running"' in line and "indexing 10/40" in line and "<img" not in line
    job.progress("embedding", 40, 40)
    assert 0.05 < first < job.fraction <= 0.9


def test_another_upload_waits_for_the_running_one(lib, tmp_path):
    chat = Chat(lib, ScriptedEngine())
    chat.uploads._jobs["j"] = Job("a.pdf", "a")  # running
    path = tmp_path / "b.txt"
    path.write_text(_text_export(EN_PAGES, "head"), encoding="utf-8")
    job, status, _ = chat.start_upload(str(path), None)
    assert job is None and "another report is being added" in status
    assert "b" not in library.names(lib)


# ------------------------------------------------------------------------------------------- picking a report

def test_picking_a_report_starts_a_new_chat_on_it(lib):
    default = ScriptedEngine(happy())
    chat = Chat(lib, default)
    widgets = ScriptedEngine(happy())
    engines = {chat.service.default: default, WIDGETS: widgets}
    chat.service.engine = lambda name=None: engines[name or chat.service.default]
    _, transcript, turns, _ = run(chat, "How many users?")
    assert transcript and turns

    report, header, chatbot, transcript, turns, quotes, _, page_no, view, _ = chat.switch(WIDGETS)
    card = library.card(library.select(lib, WIDGETS), check=False)
    assert report == WIDGETS and "Annual Widget Market Review" in header and "Trends" not in header
    assert chatbot["value"] == [] and chatbot["examples"] == [{"text": q} for q in card.examples]
    assert (transcript, turns, quotes, page_no, view) == ([], [], {}, "", render.page_html(None, None))

    _, transcript, _, pending = chat.submit("How many shipments?", transcript, "auto")
    list(chat.respond(pending, transcript, turns, "auto", report=report))
    assert widgets.calls == [("How many shipments?", [], None)] and len(default.calls) == 1


def test_the_page_viewer_shows_the_pages_of_the_chosen_report(lib):
    chat = Chat(lib, ScriptedEngine())  # the default's engine is scripted; the added report's is real
    shown = chat.open_page("3", {}, 0, WIDGETS)[1]
    assert "Widget Prices Keep Falling" in shown and 'data-page="3"' in shown
    assert "Widget" not in chat.open_page("3", {})[1]  # the default report's page 3 is another page


def test_a_removed_report_says_so_when_picked_and_refresh_drops_it(lib):
    chat = Chat(lib, ScriptedEngine())
    assert [v for _, v in chat.refresh(None)["choices"]] == ["trends-ai-2025", WIDGETS]
    library.remove_report(lib, WIDGETS)
    out = chat.switch(WIDGETS)
    assert out[:9] == (gr.skip(),) * 9 and "no report named 'widgets'" in html.unescape(out[9])
    assert [v for _, v in chat.refresh(None)["choices"]] == ["trends-ai-2025"]


# ------------------------------------------------------------------------------------------- who may upload

RULE = [  # host, auth_user, auth_password, upload setting, allowed
    ("127.0.0.1", "", "", "auto", True),
    ("localhost", "", "", "auto", True),
    ("::1", "", "", "auto", True),
    ("0.0.0.0", "", "", "auto", False),
    ("0.0.0.0", "ana", "long secret", "auto", True),
    ("0.0.0.0", "ana", "long secret", "on", True),
    ("127.0.0.1", "", "", "off", False),
    ("0.0.0.0", "ana", "long secret", "off", False),
    ("192.168.1.5", "ana", "", "auto", False),  # half a password is none
]


@pytest.mark.parametrize("host, user, password, setting, allowed", RULE)
def test_upload_is_on_for_loopback_and_behind_a_password(tmp_path, host, user, password, setting, allowed):
    s = load_settings(home=tmp_path, host=host, auth_user=user, auth_password=password, upload=setting)
    assert upload_allowed(s) is allowed
    app = build_app(s, ScriptedEngine())
    assert any(isinstance(b, gr.UploadButton) for b in app.blocks.values()) is allowed


def test_upload_on_exposed_without_a_password_refuses_to_start(tmp_path):
    with pytest.raises(UserError, match="needs a password"):
        build_app(load_settings(home=tmp_path, host="0.0.0.0", upload="on"), ScriptedEngine())


@pytest.mark.parametrize("field, value, message", [("upload", "yes", "must be 'auto', 'on' or 'off'"),
                                                   ("max_upload_mb", 0, "at least 1")])
def test_bad_upload_settings_are_refused(field, value, message):
    with pytest.raises(UserError, match=message):
        load_settings(**{field: value})


# ------------------------------------------------------------------------------------------- removing

def test_remove_deletes_an_added_report_and_nothing_else(lib, monkeypatch, capsys):
    monkeypatch.setenv("REPORTQA_HOME", str(lib.home))
    folder = lib.home / "reports" / WIDGETS
    assert folder.is_dir()
    assert main(["remove", WIDGETS, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": WIDGETS}
    assert not folder.exists() and library.names(lib) == ["trends-ai-2025"]
    assert sorted(p.name for p in (lib.home / "reports").iterdir()) == [".library.lock"]  # no leftovers


@pytest.mark.parametrize("name, message", [("trends-ai-2025", "is the bundled report; it cannot be removed"),
                                           ("nope", "no report named 'nope'; known reports: trends-ai-2025, widgets"),
                                           ("../reports", "no report named")])
def test_remove_refuses_the_default_and_unknown_names_in_one_line(lib, monkeypatch, capsys, name, message):
    before = library_state(lib)
    with pytest.raises(UserError, match=message.split(";")[0]):
        library.remove_report(lib, name)
    monkeypatch.setenv("REPORTQA_HOME", str(lib.home))
    assert main(["remove", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reportqa: ") and message in err[0], err
    assert library_state(lib) == before
