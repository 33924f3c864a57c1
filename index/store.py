"""On-disk layout of the index and the Chroma connection.

`settings.index_dir` (`<home>/index`, or `<home>/reports/<name>/index` for a report of the library) is a symlink
to one complete build directory `.index-<build id>/` beside it:

    manifest.json   written last: a build without it is incomplete and never served
    pages.jsonl     the cleaned page records (for `Retriever.page`, the citation checker and the page viewer)
    chunks.jsonl    the chunks (the BM25 index is rebuilt from them at open time)
    chroma/         the embedded Chroma database (server mode: the vectors live in the collection the manifest names)

A rebuild writes a fresh build directory and then replaces the symlink with os.replace, which is atomic: a reader
sees the old build or the new one, never a half-written one, and a killed ingest leaves the old one serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from reportqa.index.types import IndexUnavailable
from reportqa.settings import Settings

FORMAT = 3  # bump when the build layout or what gets embedded changes: old indexes then rebuild
MANIFEST = "manifest.json"
PAGES = "pages.jsonl"
CHUNKS = "chunks.jsonl"
REBUILD_HINT = "run `reportqa ingest --rebuild`"


def build_prefix(settings: Settings) -> str:
    return f".{settings.index_dir.name}-"


def collection_name(build_dir: Path) -> str:
    """One collection per build (chroma names allow [a-zA-Z0-9._-], 3..512 chars)."""
    return "reportqa-" + re.sub(r"[^a-zA-Z0-9._-]", "-", build_dir.name.lstrip("."))


def current_build(settings: Settings) -> Path | None:
    """The build directory the index symlink points at, or None when there is none."""
    link = settings.index_dir
    if not link.exists():
        return None
    return link.resolve()


def read_manifest(build_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((build_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def switch_to(settings: Settings, build_dir: Path) -> None:
    """Point the index symlink at `build_dir` in one atomic step."""
    link = settings.index_dir
    if link.is_dir() and not link.is_symlink():  # an index dir made by hand or by an older layout: move it aside
        os.replace(link, link.with_name(f"{build_prefix(settings)}legacy-{os.getpid()}"))
    tmp = link.with_name(f".{link.name}.swap-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(build_dir.name, tmp)  # relative, so the home directory can be moved
    os.replace(tmp, link)
    fsync_dir(link.parent)


def dir_size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 2)


def remove_build(build_dir: Path) -> None:
    shutil.rmtree(build_dir, ignore_errors=True)


# --- Chroma ---------------------------------------------------------------------------------------------------

def chroma_client(settings: Settings, build_dir: Path):
    """Embedded client on the build's own folder, or an HTTP client for server mode."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    chroma_settings = chromadb.Settings(anonymized_telemetry=False)
    if settings.chroma_mode == "embedded":
        return chromadb.PersistentClient(path=str(build_dir / "chroma"), settings=chroma_settings)
    if settings.chroma_mode == "http":
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as e:  # chromadb raises a bare ValueError/ConnectError when the server is not there
            raise IndexUnavailable(f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}"
                                   f" ({type(e).__name__}); start it or set REPORTQA_CHROMA_MODE=embedded") from e
    raise IndexUnavailable(f"unknown chroma_mode {settings.chroma_mode!r} (expected 'embedded' or 'http')")


def create_collection(client, name: str, size: int):
    """A cosine collection whose nearest-neighbour search is exhaustive. Chroma's default HNSW search (ef_search 100)
    is approximate, and the 80 nearest of 677 chunks differed between processes opening the same index: the same
    question got different pages, and two eval runs of unchanged code different answers. With ef_search at least the
    collection size every process returns the same neighbours; on one report that costs nothing measurable."""
    return client.create_collection(name, configuration={"hnsw": {"space": "cosine", "ef_search": max(100, size)}},
                                    embedding_function=None)


def store_identity(settings: Settings) -> dict[str, Any]:
    """Where the vectors live: part of the fingerprint, since an index built for one store cannot serve another."""
    if settings.chroma_mode == "http":
        return {"mode": "http", "host": settings.chroma_host, "port": settings.chroma_port}
    return {"mode": settings.chroma_mode}
