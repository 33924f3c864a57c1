"""A library of reports: the bundled (default) report, plus any number added with `reportqa ingest FILE --name`.

Layout under the home directory (the default report's index stays where it always was: no migration):

    index -> .index-<id>/                  the default report (`settings.report`)
    reports/<name>/source.pdf | source.txt a copy of the added file (rebuilds and the fingerprint read it)
    reports/<name>/index -> .index-<id>/   its own index, built and switched exactly like the default one
    <build dir>/card.json                  title, subtitle, languages and checked example questions (`card`)

A report is added in a staging folder `reports/.new-<name>-<pid>/` that is renamed into place only when its index is
complete, so a file that cannot be read, a failed build or a kill leaves every existing report as it was.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import unicodedata
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from reportqa.errors import UserError
from reportqa.index import store
from reportqa.index.build import Progress, build_index, drop_collection
from reportqa.ingest.clean import has_cjk
from reportqa.ingest.records import PageRecord
from reportqa.settings import Settings

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")  # also a folder name: no dots (no "..", no hidden folder), no "/"
CARD = "card.json"
CARD_VERSION = 1  # bump when the card's rules change: cached cards are then made again
EXAMPLES_PER_LANG = 3
CHECKS_PER_SLICE = 8  # candidates tried per third of the report before giving up on that third
TOP = 3  # an example's own page must come back among the first TOP pages
EN_QUESTION = "What does the report say about {}?"
ZH_QUESTION = "报告中关于“{}”说了什么？"


class UnknownReport(UserError):
    pass


@dataclass(frozen=True)
class ReportCard:
    """What the chat shows about a report, all read from the report itself."""

    title: str
    subtitle: str
    pages: int
    languages: tuple[str, ...]  # "en", "zh": the languages that carry text on at least a tenth of the pages
    examples: tuple[str, ...]  # each one checked by `answerable`; empty while the index is not there to check them


# --------------------------------------------------------------------------------------------------- names

def slug(text: str) -> str:
    """A report name from a file name: ASCII lower-case letters, digits and '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:48].strip("-") or "report"


def default_name(settings: Settings) -> str:
    return slug(Path(settings.report).stem)


def _reports_dir(settings: Settings) -> Path:
    return settings.home / "reports"


def _source(folder: Path) -> Path | None:
    return next((p for p in sorted(folder.glob("source.*")) if p.is_file()), None)


def names(settings: Settings) -> list[str]:
    """The default report first, then the added ones by name."""
    folder = _reports_dir(settings)
    added = sorted(d.name for d in folder.iterdir() if NAME.fullmatch(d.name) and d.is_dir() and _source(d)) \
        if folder.is_dir() else []
    return [default_name(settings), *(n for n in added if n != default_name(settings))]


def select(settings: Settings, name: str | None) -> Settings:
    """Settings that serve report `name` (None or the default's name: the default report)."""
    if name is None or name == default_name(settings):
        return settings.replace(report_name="")
    folder = _reports_dir(settings) / name
    source = _source(folder) if NAME.fullmatch(name) and folder.is_dir() else None
    if source is None:
        raise UnknownReport(f"no report named {name!r}; known reports: {', '.join(names(settings))}")
    return settings.replace(report_name=name, report=source)


def base(settings: Settings) -> Settings:
    """The library's own settings (the default report's) from settings that `select` pointed at one report."""
    from reportqa.settings import load_settings

    return settings.replace(report_name="", report=load_settings().report) if settings.report_name else settings


def check_name(settings: Settings, name: str) -> None:
    if not NAME.fullmatch(name):
        raise UserError(f"bad report name {name!r}: use lower-case letters, digits and '-' (at most 48, starting "
                        "with a letter or digit)")
    if name == default_name(settings):
        raise UserError(f"the name {name!r} is the bundled report's; pick another --name")


# --------------------------------------------------------------------------------------------------- adding

@contextmanager
def _library_lock(settings: Settings):
    """One library change at a time per home (the kernel drops the lock if the process dies)."""
    folder = _reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".library.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def add_report(settings: Settings, file: str | Path, name: str | None = None, rebuild: bool = False,
               progress: Progress | None = None) -> dict:
    """Add `file` (PDF or text export) to the library as `name` (default: a slug of the file name) with its own
    index and card. The file is read and checked before anything is written; an existing report of that name is
    replaced only with `rebuild`. Returns the build stats plus name and title. `progress(step, done, total)` hears
    the steps: "reading", "embedding" (chunks), "examples" (checking the card's example questions)."""
    from reportqa.ingest import load_pages
    from reportqa.ingest.pdf import PDF_MAGIC

    file = Path(file)
    name = slug(file.stem) if name is None else name
    check_name(settings, name)
    if progress:
        progress("reading", 0, 1)
    load_pages(file)  # IngestError (one line, naming the file) for anything that is not a readable report
    data = file.read_bytes()
    with _library_lock(settings):
        reports = _reports_dir(settings)
        for leftover in [*reports.glob(".new-*"), *reports.glob(".old-*")]:  # of a killed ingest (we hold the lock)
            shutil.rmtree(leftover, ignore_errors=True)
        folder = reports / name
        existing = _source(folder) if folder.is_dir() else None
        if existing is not None and existing.read_bytes() == data:  # the same file again: keep, repair or rebuild
            stats = build_index(select(settings, name), existing, rebuild=rebuild, progress=progress)
        elif existing is not None and not rebuild:
            raise UserError(f"a report named {name!r} already exists (from another file); pick another --name, "
                            "or add --rebuild to replace it")
        else:
            stats = _build_staged(settings, name, data, ".pdf" if data.startswith(PDF_MAGIC) else ".txt", progress)
    chosen = select(settings, name)
    if progress:
        progress("examples", 0, 1)
    return {"name": name, "title": card(chosen).title, **stats, "index_dir": str(chosen.index_dir)}


def _build_staged(settings: Settings, name: str, data: bytes, suffix: str, progress: Progress | None) -> dict:
    reports = _reports_dir(settings)
    staging = f".new-{name}-{os.getpid()}"
    (reports / staging).mkdir()
    try:
        source = reports / staging / f"source{suffix}"
        source.write_bytes(data)
        stats = build_index(settings.replace(report_name=staging, report=source), source, progress=progress)
        folder = reports / name
        old = reports / f".old-{name}-{os.getpid()}"
        if folder.exists():
            os.replace(folder, old)
        os.replace(reports / staging, folder)
        shutil.rmtree(old, ignore_errors=True)
        store.fsync_dir(reports)
        return stats
    except BaseException:
        shutil.rmtree(reports / staging, ignore_errors=True)
        raise


def remove_report(settings: Settings, name: str) -> None:
    """Remove an added report: its folder disappears in one rename (a reader sees it whole or not at all), then is
    deleted. The bundled report cannot be removed; an unknown name is an UnknownReport."""
    if name == default_name(settings):
        raise UserError(f"{name!r} is the bundled report; it cannot be removed")
    with _library_lock(settings):
        chosen = select(settings, name)  # UnknownReport, listing the names, for one the library does not have
        reports = _reports_dir(settings)
        build = store.current_build(chosen)
        if build is not None:  # in server mode the vectors live in a collection outside the folder
            drop_collection(chosen, build)
        old = reports / f".old-{name}-{os.getpid()}"
        os.replace(reports / name, old)
        store.fsync_dir(reports)
        shutil.rmtree(old, ignore_errors=True)
    log.info("removed report %s", name)


# --------------------------------------------------------------------------------------------------- listing

def list_reports(settings: Settings) -> list[dict]:
    """name, default, title, subtitle, pages, languages, size_mb, built_at (None before the first build)."""
    out = []
    for name in names(settings):
        chosen = select(settings, name)
        build = store.current_build(chosen)
        manifest = store.read_manifest(build) if build else None
        c = card(chosen, check=False)
        out.append({"name": name, "default": not chosen.report_name, "title": c.title, "subtitle": c.subtitle,
                    "pages": c.pages, "languages": list(c.languages),
                    "size_mb": store.dir_size_mb(build) if manifest else None,
                    "built_at": manifest["built_at"] if manifest else None, "source": Path(chosen.report).name})
    return out


# --------------------------------------------------------------------------------------------------- the card

def card(settings: Settings, retriever=None, check: bool = True) -> ReportCard:
    """The report's card: cached in its current build; made there (examples checked against the index) when
    `check`; without an index, or with check=False and nothing cached, made from the pages with no examples."""
    build = store.current_build(settings)
    manifest = store.read_manifest(build) if build else None
    if manifest:
        try:
            cached = json.loads((build / CARD).read_text(encoding="utf-8"))
            if cached.pop("version", None) == CARD_VERSION:
                return ReportCard(**{k: tuple(v) if isinstance(v, list) else v for k, v in cached.items()})
        except (OSError, ValueError, TypeError):
            pass
    if manifest and check:
        from reportqa.index import open_retriever

        retriever = retriever or open_retriever(settings)
        made = make_card([retriever.page(n) for n in retriever.pages], retriever)
        try:
            store.write_json_atomic(build / CARD, {"version": CARD_VERSION, **asdict(made)})
        except OSError as e:  # a read-only home still gets its card, made again next time
            log.warning("could not cache the report card in %s: %s", build, e)
        return made
    if manifest:
        pages = [PageRecord(**{k: v for k, v in row.items() if k != "text"})
                 for row in store.read_jsonl(build / store.PAGES)]
    else:
        from reportqa.ingest import load_pages

        pages = load_pages(settings.report)
    return make_card(pages, None)


def make_card(pages: list[PageRecord], retriever) -> ReportCard:
    title, subtitle = title_of(pages)
    langs = tuple(lang for lang in ("en", "zh")
                  if sum(1 for p in pages if _has_lang(p, lang)) >= max(1, len(pages) / 10))
    examples: list[str] = []
    if retriever is not None:
        for lang in langs:
            examples += _examples(pages, lang, retriever)
    return ReportCard(title, subtitle, len(pages), langs, tuple(examples))


def _has_lang(page: PageRecord, lang: str) -> bool:
    return bool(re.search(r"[A-Za-z]{3}", page.en)) if lang == "en" else has_cjk(page.zh)


_MONTHS = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE = re.compile(rf"({_MONTHS}\s+)?(\d{{1,2}},?\s+)?\d{{4}}"
                   r"|\d{4}\s*年(\s*\d{1,2}\s*月)?(\s*\d{1,2}\s*日)?", re.I)
_HEADING = re.compile(r"(?:chapter\s+)?\d+(?:\.\d+)*\.?:?\s+(\S.*)", re.I)
_CONTINUES = ("–", "-", ":", "=", "&", "+", ",", "/")
_EDGES = "…. =:–-"
_UNIT = re.compile(r",\s*[$A-Z%]{1,4}\s*$")  # a chart title's unit: "Weekly Active Users, MM"


def _cover_lines(page: PageRecord) -> list[str]:
    """The title block of a cover: its lines up to the first numbered heading or sentence, a line ending in a
    dash or colon joined with the next ("Trends –" / "Artificial Intelligence")."""
    out: list[str] = []
    for line in (page.en or page.zh).splitlines():
        line = line.strip()
        if _HEADING.fullmatch(line) or (line.endswith(".") and len(line) > 60) or len(out) >= 8:
            break
        if out and out[-1].endswith(_CONTINUES):
            out[-1] = f"{out[-1]} {line}"
        elif line:
            out.append(line)
    return out


def _is_titleish(line: str) -> bool:
    return (len(line.split()) >= 2 or (has_cjk(line) and len(line) >= 4)) and not _DATE.fullmatch(line) \
        and "://" not in line


def title_of(pages: list[PageRecord]) -> tuple[str, str]:
    """Title and subtitle from the first page with text: the title is its first title-like line (two words or
    more, not a date or address), the subtitle the other lines with letters in them (publisher, date, authors)."""
    first = next((p for p in pages if p.en or p.zh), None)
    lines = _cover_lines(first) if first else []
    title = next((x for x in lines if _is_titleish(x)), lines[0] if lines else "")
    rest = [x for x in lines if x != title and re.search(r"[^\W\d_]", x)]
    subtitle = " · ".join(rest[:3])
    return title[:120], subtitle[:160]


def _running_lines(pages: list[PageRecord]) -> set[str]:
    """Lines printed on a fifth of the pages or more (running headers and footers): never a title."""
    counts: dict[str, int] = {}
    for p in pages:
        for line in set(p.text.splitlines()):
            counts[line.strip()] = counts.get(line.strip(), 0) + 1
    return {x for x, n in counts.items() if n >= max(3, len(pages) / 5)}


def _page_title(page: PageRecord, lang: str, running: set[str]) -> str | None:
    """A section heading on the page ("2.4. The glob files"), else its first line: a slide title."""
    lines = [x.strip() for x in (page.en if lang == "en" else page.zh).splitlines()]
    lines = [x for x in lines if x and x not in running]
    heading = next((m[1] for x in lines if (m := _HEADING.fullmatch(x)) and not x[-1].isdigit()), None)
    title = heading or (lines[0] if lines else "")
    topic = title.split("=", 1)[0]  # a slide title "Topic = Claim" asks best about its topic
    title = _UNIT.sub("", topic if _is_titleish(topic.strip(_EDGES)) else title).strip(_EDGES)
    words = len(title.split()) if lang == "en" else len(title) // 2
    if not 2 <= words <= 12 or len(title) > 80 or title.endswith((",", ";")) or (lang == "zh") != has_cjk(title):
        return None
    if lang == "en" and (title[0].islower() or not re.search(r"[A-Za-z]{3}", title)):
        return None
    return title


def _question(title: str, lang: str) -> str:
    if title.endswith(("?", "？")):
        return title
    return EN_QUESTION.format(title) if lang == "en" else ZH_QUESTION.format(title)


def _examples(pages: list[PageRecord], lang: str, retriever) -> list[str]:
    """Up to EXAMPLES_PER_LANG questions, one from each third of the report: the first candidate of that third
    (a section or slide title turned into a question) that `answerable` accepts."""
    running = _running_lines(pages)
    candidates = [(p.page, t) for p in pages[1:] if p.kind != "outline" and (t := _page_title(p, lang, running))]
    seen: set[str] = set()
    out = []
    for k in range(EXAMPLES_PER_LANG):
        part = candidates[k * len(candidates) // EXAMPLES_PER_LANG:(k + 1) * len(candidates) // EXAMPLES_PER_LANG]
        for page, title in part[:CHECKS_PER_SLICE]:
            question = _question(title, lang)
            if question not in seen and answerable(retriever, question, page):
                seen.add(question)
                out.append(question)
                break
    return out


def answerable(retriever, question: str, page: int) -> bool:
    """Whether an example question made from `page` may be offered, judged without the LLM (far too slow to ask
    it every candidate): retrieval for the question puts `page` among its first TOP (3) pages, and that page holds
    every term of the question (its keyword tokens, less those of the question template)."""
    from reportqa.index.keywords import tokenize

    if page not in [h.page for h in retriever.retrieve(question, k=TOP)][:TOP]:
        return False
    record = retriever.page(page)
    template = set(tokenize(EN_QUESTION.format("") + ZH_QUESTION.format("")))
    terms = set(tokenize(question)) - template
    return bool(terms) and record is not None and terms <= set(tokenize(record.text))
