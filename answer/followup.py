"""Follow-up questions: deciding whether a question needs the conversation, and writing it out as a standalone
question that keeps the earlier turn's subject and still asks (checked in code, whatever wrote it)."""

from __future__ import annotations

import re

from reportqa.answer.text import detect_lang
from reportqa.answer.types import Lang

_EN_ASKING = re.compile(
    r"^(what|what's|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|will|would|should|"
    r"has|have|had|may|might|list|name|give|tell|show|describe|compare|explain|summari[sz]e|find|and|or)\b", re.I)
# "According to Pew, ..." opens answers and questions alike: what follows decides.
_EN_LEAD = re.compile(r"^(?:according to|per|in|based on)\b[^,]{0,60},\s*", re.I)
_ZH_ASKING = re.compile("什么|多少|哪|谁|几[个年家种月天次位款倍]|如何|怎样|怎么|为什么|为何|是否|多大|多久|多长|多高|"
                        "有没有|是不是|吗|呢|^(?:请|列出|介绍|比较|说明|描述|解释)")


def is_statement(text: str, lang: Lang | None = None) -> bool:
    """True when `text` states something instead of asking: a follow-up rewrite like "According to Pew, 20% of US
    adults aged 18-29 had used ChatGPT in July 2023." or "根据报告，资本支出为+21%". A question ends with ?/？ or
    is interrogative (opens with a question word, an auxiliary or a request like "List …" in English; carries a
    question word or particle like 多少/哪/吗/呢/请 in Chinese). `lang` defaults to the text's own language.
    The canonical check: the follow-up rewriter validates with it, and the eval counts statement rewrites with it."""
    text = text.strip().strip("\"'“”")
    if not text:
        return False
    if text.endswith(("?", "？")):
        return False
    if (lang or detect_lang(text)) == "zh":
        return not _ZH_ASKING.search(text)
    return not _EN_ASKING.match(_EN_LEAD.sub("", text))
