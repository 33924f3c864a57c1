"""`AnswerEngine`: follow-up rewriting -> retrieval -> small prompt -> streamed generation -> code-side checks
(citations, numbers, language, refusal). The model proposes; the rules decide what is shown: the sentence rules in
grounding.py, and here the ones on the whole answer, whose order is the flow of one question (refuse before asking,
withdraw, re-ask, quote the evidence). Every firing is recorded on `Answer.checks`. A question of several questions
goes through this once per part (`followup.parts`), the answers joined."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence

from reportqa.answer import prompts
from reportqa.answer.followup import FollowUps, parts, requested_lang
from reportqa.answer.grounding import (
    Checked,
    Checks,
    Params,
    Source,
    cited_pages,
    coverage,
    excerpt_coverage,
    facts,
    fallback_answer,
    figures_absent,
    format_context,
    ground,
    in_lang,
    is_refusal,
    named_pages,
    on_topic,
    page_list,
    render,
    select_context,
    title_index,
    titled_pages,
    without_citations,
)
from reportqa.answer.lexicon import Lexicon
from reportqa.answer.llm import ChatLLM, Message, get_llm
from reportqa.answer.text import asked_years, detect_lang, names, squash, terms
from reportqa.answer.types import Answer, Citation, Event, Evidence, Final, Lang, Rule, Token, Verdict
from reportqa.errors import UserError
from reportqa.index.types import PageHit
from reportqa.settings import Settings

log = logging.getLogger(__name__)

EARLIER_PAGES = 2  # pages of the earlier answer a follow-up's last resort may add to its retrieved pages

# Sentence ends of a checked answer: a Chinese full stop, or an English one before the next sentence's capital
# ("5.5x" and "[p. 5]" stay whole).
_SENTENCE = re.compile(r"(?<=[。！？])|(?<=[.!?])\s+(?=[A-Z“\"‘(])")


def _said(sentence: str) -> str:
    """A sentence as compared between parts: without its citations and spacing."""
    return squash(without_citations(sentence))

History = Sequence[tuple[str, str]]


class AnswerEngine:
    """Thread-safe: retrieval is read-only and the model serialises generations itself, so one engine may serve
    many UI sessions."""

    def __init__(self, settings: Settings, retriever=None, llm: ChatLLM | None = None):
        self.settings = settings
        if retriever is None:
            from reportqa.index import open_retriever

            retriever = open_retriever(settings)
        self.retriever = retriever
        self._llm = llm
        # Retrievers that can list their pages give the checks a bilingual term table mined from the report.
        listed = getattr(retriever, "pages", None)
        records = list(filter(None, map(retriever.page, listed))) if listed else []
        self.lexicon = Lexicon(records) if records else None
        self.titles = title_index(records)
        self.params = Params.of(settings.advisory_rules)
        self.followups = FollowUps(lambda: self.llm, self.lexicon, use_model=settings.followup_model)

    @property
    def llm(self) -> ChatLLM:
        if self._llm is None:
            self._llm = get_llm(self.settings)
        return self._llm

    def warm_up(self) -> None:
        """Load the model and read the fixed system prompt now, so the first question pays for neither (the UI and
        the benchmarks call this at start)."""
        self.llm.warm_up([Message("system", prompts.SYSTEM)])

    def ask(self, question: str, history: History | None = None, lang: Lang | None = None) -> Answer:
        final = None
        for ev in self.stream(question, history, lang):
            if isinstance(ev, Final):
                final = ev.answer
        assert final is not None
        return final

    def stream(self, question: str, history: History | None = None, lang: Lang | None = None) -> Iterator[Event]:
        question = question.strip()[: self.settings.max_question_chars]
        # "用中文再说一遍" after an English answer: the earlier question, answered in the language asked for
        lang = lang or (requested_lang(question) if history else None) or detect_lang(question)
        asked = parts(question)
        if len(asked) == 1:
            yield from self._stream_one(question, history, lang)
            return
        yield from self._stream_parts(question, asked, history, lang)

    def _stream_parts(self, question: str, asked: list[str], history: History | None, lang: Lang) -> Iterator[Event]:
        """A question of several questions, each answered on its own pages and checked on its own, the answers
        joined: one 240-token excerpt budget for two questions held the facts of neither, and the model answered
        the first. A later part leans on the first as a follow-up does on the previous turn ("谷歌用了多少年？")."""
        t0 = time.perf_counter()
        done: list[Answer] = []
        pages: list[int] = []
        for i, part in enumerate(asked):
            turns = [*(history or []), (asked[0], done[0].answer)] if i else history
            gap = " " if i and lang == "en" else ""  # the parts' streamed answers, one after the other
            for ev in self._stream_one(part, turns, lang):
                if isinstance(ev, Evidence):
                    pages += [p for p in ev.pages if p not in pages]
                    yield Evidence(list(pages))
                elif isinstance(ev, Token):
                    yield Token(gap + ev.text)
                    gap = ""
                else:
                    done.append(ev.answer)
        yield Final(self._joined(question, asked, done, lang, t0))

    def _joined(self, question: str, asked: list[str], done: list[Answer], lang: Lang, t0: float) -> Answer:
        """One answer from the parts' answers: those answered in order (a refused part says so in a line of its own),
        or the first part's refusal when none was. `parts` records what each part was answered as; the standalone
        question is the question as asked with its first part written out from the conversation."""
        texts: list[str] = []
        cites: dict[int, Citation] = {}
        said: set[str] = set()
        lead = prompts.PREFILL[lang]  # "根据报告，" once, not before every part
        for part, a in zip(asked, done, strict=True):
            new = [] if a.refused or a.error else self._new_sentences(a, said)
            if not new:
                a.refused = True
                texts.append(prompts.PART_UNANSWERED[lang].format(part=part))
                continue
            text = ("" if lang == "zh" else " ").join(new)
            led = lead and a.answer.startswith(lead) and not any(t.startswith(lead) for t in texts)
            texts.append(lead + text if led else text)
            said.update(map(_said, new))
            for c in a.citations:
                cites.setdefault(c.page, c)
        answered = any(not (a.refused or a.error) for a in done)
        return Answer(
            question=question, standalone_question=question.replace(asked[0], done[0].standalone_question, 1),
            answer=("" if lang == "zh" else " ").join(texts) if answered else done[0].answer, lang=lang,
            refused=not answered, citations=list(cites.values()),
            retrieved=list({p: s for a in done for p, s in a.retrieved}.items()),
            first_token_s=done[0].first_token_s, total_s=time.perf_counter() - t0,
            error=next((a.error for a in done if a.error), None),
            unverified=not answered and any(a.unverified for a in done),
            context="\n".join(a.context for a in done if a.context), checks=[c for a in done for c in a.checks],
            parts=[a.standalone_question for a in done])

    def _stream_one(self, question: str, history: History | None, lang: Lang) -> Iterator[Event]:
        t0 = time.perf_counter()
        ans = Answer(question=question, standalone_question=question, answer="", lang=lang, refused=False)

        def finish(text: str, *, refused: bool = False, error: str | None = None,
                   kept: Sequence[Checked] = ()) -> Final:
            ans.answer, ans.refused, ans.error = text, refused, error
            quotes = {}
            for c in kept:
                for p in c.pages:
                    quotes.setdefault(p, c.quotes[p])
            ans.citations = [Citation(p, q) for p, q in quotes.items()]
            ans.total_s = time.perf_counter() - t0
            if ans.first_token_s is None:
                ans.first_token_s = ans.total_s
            return Final(ans)

        try:
            resolved = self.followups.resolve(question, history)
            ans.standalone_question = resolved.question
            if resolved.leans_on and history and self.settings.followup_turns:
                ans.leans_on = (resolved.leans_on, history[-1][1])
            hits = self.retriever.retrieve(ans.standalone_question, k=self.settings.top_k)
            named = self._named_pages(ans.standalone_question, hits)
            hits = [*named, *(h for h in hits if h.page not in {n.page for n in named})][: self.settings.top_k]
            if resolved.appended and history and self.settings.followup_pages:
                hits = self._with_earlier_pages(hits, history[-1][1])
            sources = [Source.build(h, self.retriever.page(h.page)) for h in hits]
        except UserError as e:
            yield finish(str(e), error=str(e))
            return
        ans.retrieved = [(s.page, s.score) for s in sources]
        yield Evidence([s.page for s in sources])

        cov = coverage(ans.standalone_question, sources, self.lexicon)
        if self._refuse_unasked(ans, sources, cov, bool(named)):
            text = self._refusal_text(lang, sources)
            ans.first_token_s = time.perf_counter() - t0
            yield Token(text)
            yield finish(text, refused=True)
            return

        named_set = frozenset(h.page for h in named)
        messages, order = self._prompt(ans, sources, named_set, self.settings.answer_context_tokens, cov)
        log.debug("prompt excerpts (coverage %.2f):\n%s", cov, ans.context)
        raw = ""
        try:
            for piece in self._generate(messages, lang):
                if ans.first_token_s is None:
                    ans.first_token_s = time.perf_counter() - t0
                raw += piece
                yield Token(piece)
        except Exception as e:  # backend down, timeout, model missing: show the pages, never raise into the UI
            log.warning("LLM failed: %s", e)
            pages = page_list([s.page for s in sources], lang, prompts.PAGE_LIST[lang])
            yield finish(prompts.LLM_ERROR[lang].format(error=str(e)[:160], pages=pages), error=str(e))
            return

        log.debug("raw answer: %r", raw)
        kept, answered = self._check(raw, ans, cov, sources, messages, order, named_set)
        if not facts(kept):
            ans.unverified = bool(answered)
            if answered and self.settings.unverified_answers == "mark":
                yield finish(prompts.UNVERIFIED_MARK[lang] + without_citations(answered))
                return
            yield finish(self._refusal_text(lang, sources, ans.unverified), refused=True)
            return
        yield finish(render(kept, lang), kept=kept)

    def _new_sentences(self, a: Answer, said: set[str]) -> list[str]:
        """The sentences of a part's answer that an earlier part's answer did not already say. A later part answered
        with the earlier part's sentence word for word ("…资本支出为+21%…" for "同比增长多少？") was answered as the
        earlier part, not as itself."""
        out = []
        for sentence in filter(None, _SENTENCE.split(a.answer.removeprefix(prompts.PREFILL[a.lang]).strip())):
            if _said(sentence) in said and self._checks(a).fire(Rule.REPEATED_PART, Verdict.WITHDRAWN, sentence,
                                                                 "an earlier part said it"):
                continue
            out.append(sentence)
        return out

    # ------------------------------------------------------------ steps

    def _checks(self, ans: Answer) -> Checks:
        return Checks(self.params, ans.checks)

    def _refuse_unasked(self, ans: Answer, sources: list[Source], cov: float, named: bool) -> bool:
        """Refuse without asking the model when the question names what the report never mentions, or its terms are
        too few on the best retrieved page (unless it names a page), or it states a figure or asks about a year that
        no retrieved page prints (both advisory by default)."""
        rec, question = self._checks(ans), ans.standalone_question
        refuse = False
        if cov < self.params.min_coverage and not named:
            refuse |= rec.fire(Rule.LOW_COVERAGE_REFUSAL, Verdict.REFUSED, question,
                               f"coverage {cov:.2f} on pages {[p for p, _ in ans.retrieved]}")
        if unknown := self._unknown_names(question):
            refuse |= rec.fire(Rule.UNKNOWN_NAME_REFUSAL, Verdict.REFUSED, question,
                               "names the report never uses: " + ", ".join(unknown))
        if absent := figures_absent(question, [n for s in sources for n in s.nums]):
            refuse |= rec.fire(Rule.FIGURE_NOT_IN_REPORT, Verdict.REFUSED, question,
                               "figures no retrieved page states: " + ", ".join(absent))
        if sources and (years := sorted(asked_years(question) - frozenset().union(*(s.years for s in sources)))):
            refuse |= rec.fire(Rule.YEAR_NOT_ON_PAGES, Verdict.REFUSED, question,
                               f"years no retrieved page prints: {', '.join(map(str, years))}")
        return refuse

    def _prompt(self, ans: Answer, sources: list[Source], named: frozenset[int], budget: int,
                cov: float) -> tuple[list[Message], list[int]]:
        """The answering prompt with excerpts chosen within `budget` (recorded in `ans.context`), and the pages in the
        order it shows them: the best page last, next to the question, where the model reads it most reliably;
        but first on pages that cover the question poorly, where a page next to the question is what the model
        pastes into an answer the report does not have ("quantum computing + AI" answered with p. 93's "the next
        frontier is AGI")."""
        context = select_context(ans.standalone_question, sources, budget, self.lexicon, named)
        wide = self.settings.answer_retry_context_tokens
        if budget < wide and self._left_out(ans, context, cov):
            context = select_context(ans.standalone_question, sources, wide, self.lexicon, named)
        if cov < self.params.retry_coverage:
            context.reverse()
        ans.context = format_context(context)
        question, earlier = ans.standalone_question, []
        if ans.leans_on:  # the follow-up as asked, after the turn it leans on
            question, (before, said) = ans.question, ans.leans_on
            earlier = [Message("user", prompts.EARLIER[ans.lang].format(question=before)), Message("assistant", said)]
        messages = [Message("system", prompts.SYSTEM), *earlier,
                    Message("user", prompts.ANSWER[ans.lang].format(context=ans.context, question=question))]
        return messages, [p for p, _ in context]

    def _left_out(self, ans: Answer, context: list[tuple[int, list[str]]], cov: float) -> bool:
        """Do the excerpts leave out what the best page has of the question (its terms on a line the budget did not
        reach)? Then the first attempt reads wider excerpts (rule excerpt_widened): on the fresh dev files, 26 of
        174 answerable questions, of which 6 more then had their facts in the prompt."""
        gap = cov - excerpt_coverage(ans.standalone_question, context, self.lexicon)
        return gap > self.params.widen_gap and self._checks(ans).fire(
            Rule.EXCERPT_WIDENED, Verdict.WIDENED, ans.standalone_question,
            f"the excerpts cover {gap:.2f} less of the question than the best page")

    def _check(self, raw: str, ans: Answer, cov: float, sources: list[Source], messages: list[Message],
               order: list[int], named: frozenset[int]) -> tuple[list[Checked], str]:
        """The sentences of the model's answer that survive the grounding rules, repaired for language; when nothing
        survives but the pages cover the question, a second, more direct attempt (on wider excerpts when the pages
        cover the question well), then the evidence quoted; [] means refuse. Also the model's latest answer that
        was not a refusal ("" if it only refused)."""
        lang, question, p = ans.lang, ans.standalone_question, self.params
        rec = self._checks(ans)
        answered = "" if is_refusal(raw) else raw
        kept = self._grounded(raw, ans, sources, messages, order)
        # An answer that did not hold up (the model saw an answer but misread a figure), or a refusal on pages that
        # share most of the question's terms, is more often the small model's slip than a gap. A refusal on poorly
        # covered pages agrees with the evidence and is trusted.
        retry = Rule.MODEL_REFUSAL_RETRY if is_refusal(raw) else Rule.WITHDRAWN_ANSWER_RETRY
        if not facts(kept) and (retry is Rule.WITHDRAWN_ANSWER_RETRY or cov >= p.retry_coverage) and rec.fire(
                retry, Verdict.RETRIED, question, f"coverage {cov:.2f}"):
            if cov >= p.retry_coverage:
                # Pages that cover the question often hold the facts outside the first excerpts: read more of them
                # (only the few questions that get here pay for it). On poorly covered pages more text only gives
                # the model more to paste into an answer the report does not have.
                messages, order = self._prompt(ans, sources, named, self.settings.answer_retry_context_tokens, cov)
            try:
                second = "".join(self._generate(messages, lang, prompts.ANSWER_DIRECT[lang]))
                log.debug("raw answer (second attempt): %r", second)
                answered = answered if is_refusal(second) else second
                kept = self._grounded(second, ans, sources, messages, order)
            except Exception as e:
                log.warning("LLM failed on the second attempt: %s", e)
        if not facts(kept) and cov >= p.trust_coverage:
            # Still nothing, yet the pages cover the question well: quote them.
            quoted = fallback_answer(question, lang, sources, [], self.lexicon, min_share=p.quote_share)
            if quoted and rec.fire(Rule.EVIDENCE_QUOTE_FALLBACK, Verdict.REPLACED, quoted[0].sentence.text,
                                   f"coverage {cov:.2f}"):
                kept = quoted
                kept[0].sentence.text = prompts.QUOTE_LEAD[lang] + kept[0].sentence.text
            elif not quoted:
                log.info("model gave no usable answer at coverage %.2f; nothing to quote", cov)
        return kept, answered

    def _grounded(self, raw: str, ans: Answer, sources: list[Source], messages: list[Message],
                  order: list[int]) -> list[Checked]:
        """One model answer through the grounding rules, the topic check and the language repair."""
        lang, question, rec = ans.lang, ans.standalone_question, self._checks(ans)
        g = ground(raw, sources, order, lang, self.lexicon, question, self.params)
        ans.checks += g.checks
        kept = g.kept if facts(g.kept) else []
        by_page = {s.page: s for s in sources}
        if kept and not on_topic(question, [by_page[p] for c in kept for p in c.pages], self.lexicon) and rec.fire(
                Rule.OFF_TOPIC, Verdict.WITHDRAWN, render(kept, lang),
                "the cited pages never mention what the question is about"):
            kept = []
        latin_ok = frozenset(self.lexicon.zh_latin) | terms(question) if self.lexicon else None
        if kept and not in_lang(kept, lang, latin_ok) and rec.fire(
                Rule.WRONG_LANGUAGE_RETRY, Verdict.RETRIED, render(kept, lang), f"not in {lang}"):
            kept = self._repair_language(messages, ans, sources, order, kept, latin_ok)
        return kept

    def _generate(self, messages: list[Message], lang: Lang, hint: str = "") -> Iterator[str]:
        """Stream an answer (with `hint` added to the instructions). Chinese answers start from a Chinese prefill,
        which a small model continues in Chinese far more reliably than it obeys an instruction to switch
        languages."""
        if hint:
            messages = [*messages[:-1], Message("user", messages[-1].content + hint)]
        prefill = prompts.PREFILL[lang] if self.llm.prefill else ""
        if prefill:
            messages = [*messages, Message("assistant", prefill)]
        for piece in self.llm.stream(messages, self.settings.llm_max_tokens):
            yield prefill + piece  # the prefill goes out with the first real token, so timings stay honest
            prefill = ""

    def _repair_language(self, messages: list[Message], ans: Answer, sources: list[Source], order: list[int],
                         kept: list[Checked], latin_ok: frozenset[str] | None) -> list[Checked]:
        """The model answered (partly) in the wrong language: ask once more with a stronger instruction, else keep
        the sentences in the asker's language, else build the answer from evidence sentences in that language."""
        lang, question, rec = ans.lang, ans.standalone_question, self._checks(ans)
        try:
            retry = "".join(self._generate(messages, lang, prompts.ANSWER_RETRY[lang]))
            g = ground(retry, sources, order, lang, self.lexicon, question, self.params)
            ans.checks += g.checks
            if facts(g.kept) and in_lang(g.kept, lang, latin_ok):
                return g.kept
        except Exception as e:
            log.warning("LLM failed on the language retry: %s", e)
        right = [c for c in kept if in_lang([c], lang, latin_ok)]
        if facts(right):
            for c in kept:
                if c not in right:
                    rec.fire(Rule.WRONG_LANGUAGE_RETRY, Verdict.DROPPED, c.sentence.text, f"not in {lang}")
            return right
        quoted = fallback_answer(question, lang, sources, facts(kept), self.lexicon,
                                 min_share=self.params.language_share)
        rec.fire(Rule.WRONG_LANGUAGE_RETRY, Verdict.REPLACED, render(kept, lang),
                 "evidence in " + lang if quoted else "no evidence line in " + lang)
        return quoted

    def _named_pages(self, question: str, hits: list[PageHit]) -> list[PageHit]:
        """The report's pages the question asks about by number ("what does page 55 say?") or by quoting their title
        ("the “Context” slide"), ranked first whatever their words: the reader has the page in front of them."""
        top = max((h.score for h in hits), default=1.0)
        out = []
        pages = dict.fromkeys([*named_pages(question), *titled_pages(question, self.titles)])
        for n in list(pages)[: self.settings.top_k]:
            record = self.retriever.page(n)
            if record is not None:
                out.append(PageHit(n, top, record.section, record.kind))
        return out

    def _with_earlier_pages(self, hits: list[PageHit], earlier: str) -> list[PageHit]:
        """A follow-up that no rule could write out ("Over how many years?" after a Chinese question) keeps little of
        the earlier turn's topic in its words; the pages the earlier answer cited still hold it. Up to
        EARLIER_PAGES of them not retrieved take the last places."""
        have = {h.page for h in hits}
        extra = [r for p in cited_pages(earlier) if p not in have and (r := self.retriever.page(p)) is not None]
        extra = extra[:EARLIER_PAGES]
        if not extra:
            return hits
        log.info("follow-up: pages %s of the earlier answer added", [r.page for r in extra])
        last = min((h.score for h in hits), default=0.0)
        keep = hits[: max(1, self.settings.top_k - len(extra))]
        return [*keep, *(PageHit(r.page, last, r.section, r.kind) for r in extra)]

    def _unknown_names(self, question: str) -> list[str]:
        """Names in the question (Optimus, Hynix, Gaudi; 小米; Llama 5) that appear nowhere in the report: it cannot be
        about them."""
        if self.lexicon is None:
            return []
        return sorted([n for n in names(question) if not self.lexicon.mentions(n)]
                      + self.lexicon.unknown_zh_names(question) + self.lexicon.unknown_versions(question))

    @staticmethod
    def _refusal_text(lang: Lang, sources: list[Source], unverified: bool = False) -> str:
        pages = [s.page for s in sources[:3]]
        text = (prompts.UNVERIFIED if unverified else prompts.REFUSE)[lang]
        if pages:
            text += prompts.NEAREST[lang].format(pages=page_list(pages, lang, prompts.PAGE_LIST[lang]))
        return text

