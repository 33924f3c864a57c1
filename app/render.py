"""What the chat shows, built from untrusted text (questions, report pages, model output) so that it renders inert:
no HTML, no links or images, no code spans, only the markup this module adds itself."""

from __future__ import annotations

import html
import re
import unicodedata

from reportqa.answer.types import Answer
from reportqa.errors import UserError
from reportqa.ingest import PageRecord

# Markdown characters that start links/images ([ ]), code (` ~), emphasis (* _), tables (|) or escapes (\).
# Backslash-escaping them makes the Markdown renderer print them as typed; < > & become entities.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]~|])")
_LEADING_SPACE = re.compile(r"^[ \t]+", re.M)  # 4 leading spaces would open a code block, where entities show raw
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp)://|\b(www)\.")  # bare URLs that GitHub-flavoured Markdown makes links
_CITE = re.compile(r"\\\[p\. (\d+)\\\]")  # a page citation "[p. 12]" after escaping
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # can make displayed text read differently
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class BadQuestion(UserError):
    pass


MESSAGES = {
    "empty": {"en": "Please type a question about the report.", "zh": "请输入一个关于报告的问题。"},
    "long": {"en": "That question is {n:,} characters long; please keep it under {max:,}.",
             "zh": "问题太长（{n:,} 个字符），请控制在 {max:,} 个字符以内。"},
    "control": {"en": "The question contains control characters; please retype it as plain text.",
                "zh": "问题中含有控制字符，请以纯文本重新输入。"},
    "failed": {"en": "Something went wrong while answering. The error is in the server log; please try again.",
               "zh": "回答时出了问题（详情见服务器日志），请重试。"},
    "waiting": {"en": "Waiting for the model…", "zh": "等待模型…"},
    "searching": {"en": "Searching the report…", "zh": "正在检索报告…"},
    "writing": {"en": "Reading p. {pages} and writing the answer…", "zh": "正在阅读第 {pages} 页并撰写回答…"},
    "answered": {"en": "Answered from p. {pages}", "zh": "依据第 {pages} 页回答"},
    "refused": {"en": "The report does not answer this", "zh": "报告中没有答案"},
    "unverified": {"en": "Could not verify an answer", "zh": "未能核实答案"},
    "not_answered": {"en": "Not answered", "zh": "未能回答"},
    "busy": {"en": "The assistant is busy answering other people right now. Please ask again in a minute.",
             "zh": "助手正在回答其他人的问题，请稍后再问。"},
}


def ui_lang(question: str, choice: str | None) -> str:
    """Language for messages the UI writes itself: the chosen one, else Chinese if the question has any Chinese."""
    if choice in ("en", "zh"):
        return choice
    return "zh" if _CJK.search(question or "") else "en"


def message(key: str, lang: str, **kw) -> str:
    return MESSAGES[key][lang].format(**kw)


def check_question(question: str | None, max_chars: int, lang: str) -> str:
    """The question, stripped, or BadQuestion with a short message in `lang`."""
    q = (question or "").strip()
    if not q:
        raise BadQuestion(message("empty", lang))
    if len(q) > max_chars:
        raise BadQuestion(message("long", lang, n=len(q), max=max_chars))
    if any(map(_is_control, q)):
        raise BadQuestion(message("control", lang))
    return q


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc" and c not in "\t\n\r" or c in _BIDI


def shorten(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def drop_controls(text: str) -> str:
    """`text` without control and bidi-override characters (tab and line breaks stay)."""
    return "".join(c for c in text if not _is_control(c))


def inert(text: str) -> str:
    """Markdown source that displays `text` literally (minus control characters)."""
    text = drop_controls(text)
    text = _MD_ACTIVE.sub(r"\\\1", _LEADING_SPACE.sub("", html.escape(text, quote=False)))
    return _AUTOLINK.sub(lambda m: f"{m[1]}\\://" if m[1] else f"{m[2]}\\.", text)


def answer_markdown(text: str) -> str:
    """An answer (streamed so far, or final) with its "[p. 12]" citations set as small code badges."""
    return _CITE.sub(r" `p. \1`", inert(text))  # the space keeps adjacent badges from merging into one code span


def page_chips(answer: Answer | None, pages: list[int]) -> list[dict]:
    """Chatbot options under the answer, one per page: cited pages first (marked), then the other retrieved ones."""
    cited = list(dict.fromkeys(c.page for c in answer.citations)) if answer else []
    rest = [p for p in pages if p not in cited]
    return [{"label": f"✓ p. {p}", "value": str(p)} for p in cited] + [{"label": f"p. {p}", "value": str(p)}
                                                                          for p in rest]


def api_result(answer: Answer) -> dict:
    """The JSON the `ask` API endpoint returns."""
    d = answer.to_json()
    return {k: d[k] for k in ("answer", "lang", "refused", "citations", "retrieved", "error")}


# ---------------------------------------------------------------- page viewer

def _fold(text: str) -> tuple[str, list[int]]:
    """`text` without whitespace and lower-cased, with each kept character's index in `text`: quotes and pages
    differ in line breaks (and CJK text in spaces), so matching ignores whitespace altogether."""
    chars, where = [], []
    for i, c in enumerate(text):
        if not c.isspace():
            low = c.lower()
            chars.append(low if len(low) == 1 else c)
            where.append(i)
    return "".join(chars), where


_PIECES = re.compile(r"(?<=[.!?;:。！？；：])\s*|\n+")


def highlight_spans(text: str, quotes: list[str]) -> list[tuple[int, int]]:
    """Sorted, merged (start, end) spans of `text` that match a quote. A quote that is not found whole (it may
    span both languages or several lines) is matched piece by piece: its sentences and lines."""
    folded, where = _fold(text)
    spans = []
    for quote in quotes:
        q, _ = _fold(quote)
        pieces = [q] if q and q in folded else [_fold(p)[0] for p in _PIECES.split(quote)]
        for p in pieces:
            if len(p) < (4 if _CJK.search(p) else 8):
                continue  # short pieces ("2024", "Source:") would light up unrelated places
            start = folded.find(p)
            if start >= 0:
                spans.append((where[start], where[start + len(p) - 1] + 1))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def highlighted_html(text: str, quotes: list[str]) -> str:
    out, pos = [], 0
    for s, e in highlight_spans(text, quotes):
        out += [html.escape(text[pos:s]), "<mark>", html.escape(text[s:e]), "</mark>"]
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)


PAGE_HINT = {
    "en": "Click a page under an answer to read it here: English and Chinese side by side, the supporting passage "
          "highlighted.",
    "zh": "点击回答下方的页码，即可在此阅读该页的中英文对照原文，支持答案的段落会高亮显示。",
}


def page_html(n: int | None, record: PageRecord | None, quotes: list[str] | None = None, note: str = "") -> str:
    """The page viewer: the page's English and Chinese text side by side, the cited passages highlighted."""
    if n is None:
        return f'<div class="rq-page rq-empty"><p>{html.escape(PAGE_HINT["en"])}</p>' \
               f'<p>{html.escape(PAGE_HINT["zh"])}</p></div>'
    if record is None:
        text = note or f"Page {n} is not in the report. / 报告中没有第 {n} 页。"
        return f'<div class="rq-page rq-empty"><p>{html.escape(text)}</p></div>'
    quotes = quotes or []
    marked = bool(quotes) and any(highlight_spans(t, quotes) for t in (record.en, record.zh))
    section = f' · <span class="rq-section">{html.escape(record.section)}</span>' if record.section else ""
    legend = '<span class="rq-legend"><mark>highlighted</mark> supports the answer</span>' if marked else ""

    def column(lang: str, title: str, text: str) -> str:
        body = highlighted_html(text, quotes) if text else '<span class="rq-missing">—</span>'
        return f'<div class="rq-col" lang="{lang}"><div class="rq-col-title">{title}</div>' \
               f'<div class="rq-text">{body}</div></div>'

    return (f'<div class="rq-page" data-page="{n}"><div class="rq-page-head"><b>Page {n}</b>{section}{legend}</div>'
            f'<div class="rq-cols">{column("en", "English", record.en)}{column("zh", "中文", record.zh)}</div></div>')
