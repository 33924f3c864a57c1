"""The web chat: `build_app(settings, engine=None) -> gr.Blocks`, `launch(app, settings)` and `serve(settings)`.

One answer engine per report serves every browser session; each session picks its report. Generations run one at a
time through gradio's queue (fair, first come first served, bounded by settings.queue_size), and everything else
(page viewer, new chat, report picker, upload progress) skips the queue. Uploads are ingested in a background thread
(app/uploads.py). Untrusted text reaches the page only through app/render.py. See docs/app.md."""

from __future__ import annotations

import html
import logging
import os
import time
from collections.abc import Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline app
import gradio as gr  # noqa: E402

from reportqa.answer.types import Answer, Evidence, Final, Token  # noqa: E402
from reportqa.app import feedback, render  # noqa: E402
from reportqa.app.service import Service  # noqa: E402
from reportqa.app.uploads import STEPS, Uploads, upload_allowed  # noqa: E402
from reportqa.errors import UserError  # noqa: E402
from reportqa.settings import Settings  # noqa: E402

log = logging.getLogger(__name__)

LANGS = [("Auto", "auto"), ("English", "en"), ("中文", "zh")]
GENERATE = "generate"  # the concurrency group shared by the chat and the `ask` API: one generation at a time

THEME = gr.themes.Soft(
    primary_hue="indigo", neutral_hue="slate",
    # system fonts only: the default theme would fetch Google Fonts, and the app must work (and stay silent) offline
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei",
          "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)
CSS = """
.rq-header h1 { margin: 0; font-size: 1.45rem; }
.rq-header p { margin: .2rem 0 0; color: var(--body-text-color-subdued); }
#rq-chat .message code { font-size: .8em; padding: .05em .4em; border-radius: .6em;
  background: var(--color-accent-soft); color: var(--color-accent); white-space: nowrap; }
#rq-chat .options { display: flex; flex-wrap: wrap; gap: .4rem; justify-content: flex-start; align-items: center;
  margin: .35rem 0 0; padding: 0 .3rem; }
#rq-chat .options::before { content: "Open page:"; font-size: .8rem; color: var(--body-text-color-subdued); }
#rq-chat .options .option { flex: 0 0 auto; width: auto; min-width: 0; padding: .2rem .75rem; border-radius: 999px;
  font-size: .85rem; border: 1px solid var(--color-accent); color: var(--color-accent);
  background: var(--color-accent-soft); cursor: pointer; }
#rq-chat .options .option:hover { text-decoration: underline; box-shadow: 0 0 0 1px var(--color-accent); }
.rq-page { font-size: .92rem; }
.rq-page-head { margin-bottom: .5rem; display: flex; flex-wrap: wrap; gap: .4rem; align-items: baseline; }
.rq-section { color: var(--body-text-color-subdued); }
.rq-legend { margin-left: auto; font-size: .8rem; color: var(--body-text-color-subdued); }
.rq-cols { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.rq-col { min-width: 0; border: 1px solid var(--border-color-primary); border-radius: .5rem; padding: .5rem .7rem;
  max-height: 62vh; overflow: auto; background: var(--background-fill-primary); }
.rq-col-title { font-weight: 600; font-size: .8rem; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued); margin-bottom: .3rem; }
.rq-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.45; }
.rq-page mark { background: #fde68a; color: inherit; border-radius: .2em; padding: 0 .1em; }
.rq-empty { color: var(--body-text-color-subdued); padding: 1rem .2rem; }
.rq-label { font-size: .85rem; color: var(--body-text-color-subdued); line-height: 2.4rem; white-space: nowrap; }
.rq-note { font-size: .8rem; color: var(--body-text-color-subdued); }
.rq-upload { font-size: .85rem; display: flex; flex-direction: column; gap: .25rem; }
.rq-upload progress { width: 100%; height: .6rem; accent-color: var(--color-accent); }
.rq-upload.rq-failed { color: var(--error-text-color, #b91c1c); }
"""


def _lang(choice: str | None) -> str | None:
    return choice if choice in ("en", "zh") else None


def _pages_text(pages: list[int]) -> str:
    return ", ".join(str(p) for p in pages)


# Above an answer to a rewritten follow-up: the question the answer is for, so a wrong rewrite shows and the user can
# ask again in full.
ANSWERING = {"en": "Answering: ", "zh": "正在回答："}


def _answering(a: Answer, ui: str) -> str:
    """The question as the engine understood it, when that is not what was typed: a follow-up written out, or a
    question of several answered part by part with a later part written out ("…？Anthropic呢？" as
    "Anthropic的年化收入是多少？")."""
    shown = ("" if a.lang == "zh" else " ").join(a.parts) if a.parts else a.standalone_question
    if "".join(shown.split()) == "".join(a.question.split()):
        return ""
    return f"*{ANSWERING[ui]}{render.inert(shown)}*\n\n"


def _thought(title: str, seconds: float | None = None) -> dict:
    """The "thinking" line above an answer: a spinner while pending, the time taken when done."""
    meta = {"title": title, "status": "pending"} if seconds is None else \
        {"title": title, "status": "done", "duration": round(seconds, 1)}
    return {"role": "assistant", "content": "", "metadata": meta}


def _header(card) -> str:
    about = " · ".join(x for x in (card.subtitle, f"{card.pages} pages") if x)
    return (f'<div class="rq-header"><h1>Ask the report: <i>{html.escape(card.title)}</i></h1>'
            f'<p>{html.escape(about)} · ask in English or 中文 — answers come from the report and cite its pages.'
            '</p></div>')


def _examples(card) -> list[dict] | None:
    return [{"text": q} for q in card.examples] or None


def _status(text: str, failed: bool = False) -> str:
    """The library line under the picker: an upload's outcome or a failure, escaped (file names are the user's)."""
    state = "failed" if failed else "done"
    return (f'<div class="rq-upload{" rq-failed" if failed else ""}" data-state="{state}">'
            f'{"⚠️" if failed else "✓"} {html.escape(text)}</div>')


class Chat:
    """The event handlers, kept apart from the layout so tests can drive them without a browser.

    The transcript (gr.State) holds the Chatbot's messages, already rendered inert; `turns` holds the raw
    (question, answer) pairs the engine gets as history; `quotes` maps each page cited by the latest answer to its
    supporting passages, for the page viewer's highlight; `report` is the session's report name (None: the default)."""

    def __init__(self, settings: Settings, engine=None, service: Service | None = None):
        self.settings = settings
        self.service = service or Service(settings, engine)
        self.upload_on = upload_allowed(settings)
        self.uploads = Uploads(self.service.settings, on_added=self.service.forget)

    def engine_for(self, report: str | None = None):
        """Built on first use, so a missing index or model becomes a message in the chat, not a dead app."""
        return self.service.engine(report)

    # ------------------------------------------------------------ chat

    def submit(self, question: str, transcript: list, lang: str):
        """Fast, unqueued: validate, show the question and a waiting indicator, lock the input until the answer."""
        ui = render.ui_lang(question, lang)
        try:
            q = render.check_question(question, self.settings.max_question_chars, ui)
        except render.BadQuestion as e:
            asked = [{"role": "user", "content": render.inert(render.shorten(question))}] if question.strip() else []
            transcript = [*transcript, *asked, {"role": "assistant", "content": "⚠️ " + render.inert(str(e))}]
            return gr.update(), transcript, transcript, None
        transcript = [*transcript, {"role": "user", "content": render.inert(q)},
                      _thought(render.message("waiting", ui))]
        return gr.update(value="", interactive=False), transcript, transcript, q

    def respond(self, question: str | None, transcript: list, turns: list, lang: str,
                answers: dict | None = None, report: str | None = None) -> Iterator[tuple]:
        """Queued: stream the answer after the thinking indicator that `submit` left as the last message.
        Yields (transcript, chatbot, turns, quotes, textbox, answers); `answers` maps the transcript index of each
        answer message to the fields its 👍/👎 records (app/feedback.py)."""
        if question is None:
            yield (gr.skip(),) * 4 + (gr.update(interactive=True), gr.skip())
            return
        answers = dict(answers or {})
        t0, ui = time.perf_counter(), render.ui_lang(question, lang)
        transcript = [*transcript]
        at = len(transcript) - 1  # the thinking indicator; the answer goes after it
        raw, quotes = "", {}

        def think(key: str, done: bool = False, **kw):
            transcript[at] = _thought(render.message(key, ui, **kw), time.perf_counter() - t0 if done else None)

        def reply(content: str, options: list | None = None):
            transcript[at + 1:] = [{"role": "assistant", "content": content, **({"options": options} if options
                                                                                 else {})}]

        def out(done: bool = False):  # a fresh list per yield: each one is a snapshot of the conversation
            return [*transcript], [*transcript], turns, quotes, gr.update(interactive=True) if done else gr.skip(), \
                answers

        think("searching")
        yield out()
        chips: list = []
        try:
            with self.service.queue.turn():  # shared with the OpenAI-compatible endpoint
                engine = self.engine_for(report)
                for ev in engine.stream(question, history=[tuple(t) for t in turns], lang=_lang(lang)):
                    if isinstance(ev, Evidence):
                        chips = render.page_chips(None, ev.pages)
                        think("writing", pages=_pages_text(ev.pages))
                        reply("…", chips)
                    elif isinstance(ev, Token):
                        raw += ev.text
                        reply(render.answer_markdown(raw) + " ▍", chips)
                    elif isinstance(ev, Final):
                        a: Answer = ev.answer
                        cited = list(dict.fromkeys(c.page for c in a.citations))
                        think("answered" if cited else "unverified" if a.unverified else "refused" if a.refused else
                              "not_answered", done=True,
                              pages=_pages_text(cited))
                        reply(_answering(a, ui) + ("⚠️ " if a.error else "") + render.answer_markdown(a.answer),
                              render.page_chips(a, [p for p, _ in a.retrieved]))
                        for c in a.citations:
                            quotes.setdefault(c.page, []).append(c.quote)
                        if not a.error:
                            turns = [*turns, (question, a.answer)]
                            answers[at + 1] = feedback.from_answer(a, question, report or self.service.default)
                    yield out(done=isinstance(ev, Final))
        except Exception as e:  # the conversation stays; the failed turn is not added to the history
            if not isinstance(e, UserError):
                log.exception("answering %r failed", question)
            think("not_answered", done=True)
            reply("⚠️ " + render.inert(str(e) if isinstance(e, UserError) else render.message("failed", ui)))
            yield out(done=True)

    def busy(self, question: str | None, transcript: list, lang: str):
        """The generation failed outside our code: the queue was full (say so, give the question back) or the user
        cancelled it with "new chat" (then the waiting indicator is gone and there is nothing to say)."""
        if not (transcript and transcript[-1].get("metadata", {}).get("status") == "pending"):
            return gr.skip(), gr.skip(), gr.update(interactive=True)
        ui = render.ui_lang(question or "", lang)
        transcript = [*transcript[:-1], _thought(render.message("not_answered", ui), 0.0),
                      {"role": "assistant", "content": "⚠️ " + render.inert(render.message("busy", ui))}]
        return transcript, transcript, gr.update(value=question or "", interactive=True)

    @staticmethod
    def new_chat():
        return [], [], [], {}, gr.update(value="", interactive=True)

    # ------------------------------------------------------------ feedback

    def rate(self, transcript: list, answers: dict, evt: gr.LikeData):
        """👍, 👎 or taking one back, on a chat bubble: recorded for the answer in that bubble (a bubble without one,
        such as a warning, is ignored). Returns the recorded entry (for a comment) and the comment box, shown after a
        👎."""
        at = _answer_in_bubble(transcript, answers, evt.index)
        if at is None:
            return gr.skip(), gr.skip()
        rating = {True: "up", False: "down"}.get(evt.liked)  # liked is "" when the rating is taken back
        entry = {**answers[at], "rating": rating}
        self._record(entry)
        return entry, gr.update(visible=rating == "down", value="")

    def comment(self, text: str, entry: dict | None):
        """The comment box's text, added to the last rated answer's entry (a new line with the same feedback id)."""
        if entry and (text or "").strip():
            entry = {**entry, "comment": text}
            self._record(entry)
        return gr.update(visible=False, value=""), entry

    @staticmethod
    def forget_ratings():
        return {}, None, gr.update(visible=False, value="")

    def _record(self, entry: dict) -> None:
        try:
            feedback.record(self.settings, entry)
        except OSError:  # a full or read-only disk must not break the chat
            log.exception("could not record feedback in %s", feedback.path(self.settings))

    # ------------------------------------------------------------ page viewer

    def page_view(self, n: int | None, quotes: dict | None = None, report: str | None = None) -> str:
        if n is None:
            return render.page_html(None, None)
        try:
            record = self.engine_for(report).retriever.page(int(n))
        except UserError as e:
            return render.page_html(int(n), None, note=str(e))
        return render.page_html(int(n), record, (quotes or {}).get(int(n), []))

    def open_chip(self, quotes: dict, evt: gr.SelectData, report: str | None = None):
        n = int(evt.value["value"] if isinstance(evt.value, dict) else evt.value)
        return str(n), self.page_view(n, quotes, report)

    def open_page(self, n: str, quotes: dict, step: int = 0, report: str | None = None):
        try:
            page = max(1, int(str(n).strip()) + step)
        except ValueError:
            return gr.skip(), self.page_view(None)
        return str(page), self.page_view(page, quotes, report)

    # ------------------------------------------------------------ reports

    def choices(self) -> list[tuple[str, str]]:
        """The picker's entries: "title (name)" for every report of the library, the default first."""
        from reportqa.index import library

        return [(f"{r['title'] or r['name']} ({r['name']})", r["name"])
                for r in library.list_reports(self.service.settings)]

    def refresh(self, report: str | None):
        """On page load: the library as it is now (reports added since the app started, or removed)."""
        return gr.update(choices=self.choices(), value=report or self.service.default)

    def switch(self, report: str | None):
        """A report was picked: a new chat on it, with its title, examples and an empty page viewer (the library line
        keeps an upload's outcome). Returns (report, header, chatbot, transcript, turns, quotes, question, page_no,
        page_view, status)."""
        from reportqa.index import library

        report = report or self.service.default
        try:
            card = library.card(self.service.settings_for(report), check=False)
        except UserError as e:  # removed since the page was loaded
            return (gr.skip(),) * 9 + (_status(str(e), failed=True),)
        return (report, _header(card), gr.update(value=[], examples=_examples(card)), [], [], {},
                gr.update(value="", interactive=True), "", render.page_html(None, None), gr.skip())

    # ------------------------------------------------------------ uploads

    def start_upload(self, path: str | None, job: str | None):
        """The upload button delivered a file: check it and start ingesting it. Returns (job, status, timer)."""
        if path is None:
            return job, "", gr.update()
        try:
            new = self.uploads.start(path)
        except UserError as e:
            return job, _status(str(e), failed=True), gr.update()
        return new, self._job_status(new), gr.update(active=True)

    def poll_upload(self, job_id: str | None, report: str | None):
        """The timer's tick while an upload is ingested. Returns (status, timer, picker); when the report is in,
        the picker lists and selects it (which switches this session to it)."""
        job = self.uploads.get(job_id)
        if job is None:
            return "", gr.update(active=False), gr.skip()
        if not job.finished:
            return self._job_status(job_id), gr.skip(), gr.skip()
        if job.error:
            return _status(job.error, failed=True), gr.update(active=False), gr.skip()
        return self._job_status(job_id), gr.update(active=False), gr.update(choices=self.choices(), value=job.name)

    def _job_status(self, job_id: str) -> str:
        job = self.uploads.get(job_id)
        if job.finished:
            return _status(f"Added {job.file} as “{job.title or job.name}” ({job.name}).")
        what = STEPS.get(job.step, job.step) + (f" {job.done}/{job.total}" if job.step == "embedding" else "")
        return (f'<div class="rq-upload" data-state="running"><progress value="{job.fraction:.3f}" max="1">'
                f'</progress><span>Adding {html.escape(job.file)}: {html.escape(what)}…</span></div>')

    # ------------------------------------------------------------ API

    def ask(self, question: str, lang: str = "auto", history: list[list[str]] | None = None) -> dict:
        """Answer one question about the report.

        Args:
            question: in English or Chinese
            lang: answer language: "auto" (the question's), "en" or "zh"
            history: earlier turns as [question, answer] pairs, oldest first
        Returns:
            {answer, lang, refused, citations: [{page, quote}], retrieved: [{page, score}], error}
        """
        try:
            q = render.check_question(question, self.settings.max_question_chars, render.ui_lang(question, lang))
            with self.service.queue.turn():
                answer = self.engine_for().ask(q, history=[(u, a) for u, a in history or []], lang=_lang(lang))
        except UserError as e:
            raise gr.Error(str(e), print_exception=False) from e
        except Exception as e:
            log.exception("answering %r through the API failed", question)
            raise gr.Error(render.message("failed", render.ui_lang(question, lang)), print_exception=False) from e
        return render.api_result(answer)


def build_app(settings: Settings, engine=None, service: Service | None = None) -> gr.Blocks:
    """The chat UI and the `ask` API endpoint. Without an engine, one is built for `settings` on the first question.
    Pass the `service` that `launch` also gets to share its queue with the OpenAI-compatible endpoint."""
    from reportqa.index import library

    chat = Chat(settings, engine, service)
    # title, subtitle and examples come from the report (index/library.py); `prepare` checked the examples
    card = library.card(settings, check=False)
    with gr.Blocks(title=f"Report Q&A · {card.title}", analytics_enabled=False) as app:
        transcript, turns, quotes, pending = gr.State([]), gr.State([]), gr.State({}), gr.State(None)
        answers, rated = gr.State({}), gr.State(None)  # see Chat.respond and Chat.rate
        report, job = gr.State(chat.service.default), gr.State(None)  # this session's report and upload
        with gr.Row(equal_height=False, elem_id="rq-top"):
            header = gr.HTML(_header(card), scale=3)
            with gr.Column(scale=2, min_width=320):
                picker = gr.Dropdown(chat.choices(), value=chat.service.default, label="Report", elem_id="rq-report",
                                     interactive=True, filterable=False)
                if chat.upload_on:  # otherwise no upload component at all (and gradio takes no file: `launch`)
                    upload = gr.UploadButton(
                        f"＋ Add a report (PDF or text, up to {settings.max_upload_mb} MB)", elem_id="rq-upload",
                        type="filepath", file_count="single", size="sm", variant="secondary")
                    timer = gr.Timer(1.0, active=False)
                status = gr.HTML("", elem_id="rq-library-status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=380):
                chatbot = gr.Chatbot(
                    elem_id="rq-chat", show_label=False, height="62vh", layout="bubble", autoscroll=True,
                    latex_delimiters=[], allow_tags=False, sanitize_html=True,
                    feedback_options=["Like", "Dislike"] if settings.feedback else None,
                    buttons=["copy"], examples=_examples(card),
                    placeholder="**Ask anything about the report.** Pick an example or type below.<br>"
                                "用中文或英文提问，回答会注明出处页码。")
                comment = gr.Textbox(visible=False, elem_id="rq-comment", show_label=False, lines=1, max_lines=4,
                                     submit_btn="Send", max_length=settings.feedback_comment_chars,
                                     placeholder="What was wrong? (optional) / 哪里不对？（可选）")
                question = gr.Textbox(elem_id="rq-question", show_label=False, submit_btn="Ask", lines=1,
                                      max_lines=6, placeholder="Ask a question… / 请输入问题…", autofocus=True)
                with gr.Row(equal_height=False, elem_id="rq-controls"):
                    gr.HTML('<span class="rq-label">Answer in</span>', scale=0, min_width=80)
                    lang = gr.Radio(LANGS, value="auto", label="Answer in", elem_id="rq-lang", container=False,
                                    scale=3)
                    new = gr.Button("＋ New chat", elem_id="rq-new", scale=1, size="sm", variant="secondary")
                gr.HTML('<p class="rq-note">Answers are written by a small model running on this computer\'s CPU, '
                        'so the first words can take a while. Check the cited pages: the model can be wrong.</p>')
            with gr.Column(scale=4, min_width=380):
                with gr.Row(equal_height=True):
                    prev = gr.Button("◀", elem_id="rq-prev", scale=0, min_width=48, size="md")
                    page_no = gr.Textbox(label="Page", elem_id="rq-page-no", scale=1, show_label=False, lines=1,
                                         placeholder="Page number, then Enter", max_length=6)
                    nxt = gr.Button("▶", elem_id="rq-next", scale=0, min_width=48, size="md")
                page_view = gr.HTML(render.page_html(None, None), elem_id="rq-page")

        chat_io = dict(inputs=[question, transcript, lang], outputs=[question, transcript, chatbot, pending],
                       queue=False)
        respond_io = dict(fn=chat.respond, inputs=[pending, transcript, turns, lang, answers, report],
                          outputs=[transcript, chatbot, turns, quotes, question, answers],
                          concurrency_limit=1, concurrency_id=GENERATE, api_visibility="private",
                          show_progress="minimal", show_progress_on=[chatbot])  # queue position while waiting
        busy_io = dict(fn=chat.busy, inputs=[pending, transcript, lang], outputs=[transcript, chatbot, question],
                       queue=False, api_visibility="private")
        asked = question.submit(chat.submit, **chat_io, api_visibility="private").then(**respond_io)
        asked.failure(**busy_io)
        ex = chatbot.example_select(_example_text, None, question, queue=False, api_visibility="private") \
            .then(chat.submit, **chat_io, api_visibility="private").then(**respond_io)
        ex.failure(**busy_io)
        for clear in (new.click, chatbot.clear):  # the chatbot's own trash button must also reset the state
            clear(chat.new_chat, None, [transcript, chatbot, turns, quotes, question], queue=False, cancels=[asked, ex],
                  api_visibility="private")

        # 👍/👎 are recorded for the rated answer (app/feedback.py); after a 👎 the comment box asks what was wrong
        chatbot.like(chat.rate, [transcript, answers], [rated, comment], queue=False, api_visibility="private")
        comment.submit(chat.comment, [comment, rated], [comment, rated], queue=False, api_visibility="private")
        for clear in (new.click, chatbot.clear, picker.change):  # another report is a new chat too
            clear(chat.forget_ratings, None, [answers, rated, comment], queue=False, api_visibility="private")

        page_io = dict(outputs=[page_no, page_view], queue=False, api_visibility="private")
        chatbot.option_select(chat.open_chip, [quotes, report], **page_io)
        page_no.submit(lambda n, q, r: chat.open_page(n, q, 0, r), [page_no, quotes, report], **page_io)
        prev.click(lambda n, q, r: chat.open_page(n, q, -1, r), [page_no, quotes, report], **page_io)
        nxt.click(lambda n, q, r: chat.open_page(n, q, +1, r), [page_no, quotes, report], **page_io)

        # a programmatic change (an upload that finished selects its report) switches as well as a user's pick
        picker.change(chat.switch, [picker], [report, header, chatbot, transcript, turns, quotes, question, page_no,
                                              page_view, status], queue=False, cancels=[asked, ex],
                      api_visibility="private")
        app.load(chat.refresh, [report], [picker], queue=False, api_visibility="private")
        if chat.upload_on:
            upload.upload(chat.start_upload, [upload, job], [job, status, timer], queue=False,
                          api_visibility="private")
            timer.tick(chat.poll_upload, [job, report], [status, timer, picker], queue=False, api_visibility="private")

        gr.api(chat.ask, api_name="ask", concurrency_limit=1, concurrency_id=GENERATE)
    return app


def _answer_in_bubble(transcript: list, answers: dict, index) -> int | None:
    """The index of the answer message that a rating of message `index` is for, if any. The Chatbot shows a run of
    assistant messages (thinking line, answer) as one bubble and reports a rating with the run's first index; a
    warning after an answer joins its bubble but is not rateable on its own."""
    if not isinstance(index, int) or not 0 <= index < len(transcript):
        return None
    while index < len(transcript) and transcript[index]["role"] == "assistant":
        if index in answers:
            return index
        index += 1
    return None


def _example_text(evt: gr.SelectData) -> str:
    return evt.value["text"]


def launch(app: gr.Blocks, settings: Settings, service: Service | None = None, **kwargs):
    """Queue and start `app` as settings say (host, port, auth); kwargs go to gr.Blocks.launch. With the chat's
    `service`, the OpenAI-compatible endpoint (app/openai_api.py) is served beside it, under /v1."""
    auth = None
    if settings.auth_user or settings.auth_password:
        if not (settings.auth_user and settings.auth_password):
            raise UserError("set both auth_user and auth_password (REPORTQA_AUTH_USER / REPORTQA_AUTH_PASSWORD)")
        auth = (settings.auth_user, settings.auth_password)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        log.warning("serving on %s without a password: anyone who can reach this machine can use the app; "
                    "set REPORTQA_AUTH_USER and REPORTQA_AUTH_PASSWORD to require one", settings.host)
    if service is not None:  # its routes go first, ahead of gradio's, on the same server
        from reportqa.app import openai_api

        kwargs["app_kwargs"] = {"routes": openai_api.router(service, auth and auth[1]).routes}
    app.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    # gradio's generic upload route stores any file from anyone who can reach the app: with uploads off it takes
    # none (max_file_size=0), with them on none over the limit
    max_file_size = settings.max_upload_mb * 2**20 if upload_allowed(settings) else 0
    return app.launch(server_name=settings.host, server_port=settings.port, auth=auth, theme=THEME, css=CSS,
                      ssr_mode=False, show_error=False, footer_links=["api"], max_file_size=max_file_size, **kwargs)


def prepare(settings: Settings) -> None:
    """Build the index if it is missing or stale (progress on stderr), assemble and load the model, so the first
    question waits for neither."""
    from reportqa.index import build_index, library

    log.info("checking the index of %s (the first run builds it, with progress below)", settings.report.name)
    stats = build_index(settings, settings.report)
    if not stats.get("noop"):
        log.info("index built: %s pages, %s chunks in %.0f s", stats.get("pages"), stats.get("chunks"),
                 stats.get("seconds", 0))
    card = library.card(settings)  # made once per build (examples checked against the index), then cached
    log.info("report: %s (%d example questions checked)", card.title, len(card.examples))
    from reportqa.answer import get_llm

    log.info("model ready: %s", get_llm(settings).name)  # loaded once per process and shared by every session


def serve(settings: Settings) -> None:
    """`reportqa serve`: prepare, then serve the chat until interrupted."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's start-up self-checks, logged at INFO
    prepare(settings)
    service = Service(settings)
    app = build_app(settings, service=service)
    launch(app, settings, service, prevent_thread_lock=True, quiet=True)
    url = f"http://{settings.host}:{settings.port}"
    log.info("the chat is ready: open %s in a browser; OpenAI-compatible endpoint: %s/v1 (Ctrl+C stops it)", url, url)
    app.block_thread()
