"""A ``pg_dump`` archive on disk: its table of contents (``pg_restore --list``), its files, its sha256.

sha256 of a directory dump: the sha256 of the ``sha256sum``-style listing of its files in name
order (``<sha256 of file>  <name>\\n`` per file); the manifest also keeps each file's sha256 under
``files``. By hand: ``cd <dump> && LC_ALL=C sha256sum * | sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ...shared.files import sha256_file
from .tools import PgTool, build_command, find_tool, first_error, run


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str  # "TABLE", "TABLE DATA", "VIEW", ...
    schema: str
    name: str


_TOC_RE = re.compile(
    r"^(\d+); \d+ \d+ (MATERIALIZED VIEW DATA|SEQUENCE SET|SEQUENCE OWNED BY|TABLE DATA|MATERIALIZED VIEW|"
    r"FOREIGN TABLE|TABLE|VIEW|SEQUENCE|SCHEMA) (\S+) (.+) (\S+)$"
)


@dataclass
class Listing:
    ok: bool
    detail: str  # one line
    entries: int = 0
    relations: list[TocEntry] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)

    def of(self, *descs: str) -> list[TocEntry]:
        return [e for e in self.relations if e.desc in descs]


def list_archive(path: Path, tool: PgTool | None = None) -> Listing:
    """``pg_restore --list`` of a dump: readable?, its TOC's relations, and (directory) data files present."""
    tool = tool or find_tool("pg_restore")
    out = run(build_command(tool.path, None, ["--list", str(path)], connect=False), timeout=600)
    if out.returncode != 0:
        return Listing(False, f"pg_restore --list failed: {first_error(out.stderr)}")
    header, rels, n = {}, [], 0
    for line in out.stdout.splitlines():
        if line.startswith(";"):
            m = re.match(r";\s+([^:]+):\s*(.*)$", line)
            if m:
                header[m.group(1).strip()] = m.group(2).strip()
            continue
        if not line.strip():
            continue
        n += 1
        m = _TOC_RE.match(line)
        if m:
            rels.append(TocEntry(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    listing = Listing(True, "", n, rels, header)
    if path.is_dir():
        # "<dump id>.dat", or "<dump id>.dat.<compression>": the ids with a data file, read once (not a scan of the
        # folder per table: 10,000 tables made that 10^8 comparisons)
        present = {f.split(".", 1)[0] for f in os.listdir(path) if f.split(".", 2)[1:2] == ["dat"]}
        missing = [e.name for e in listing.of("TABLE DATA") if str(e.dump_id) not in present]
        if missing:
            return Listing(False, f"pg_restore --list ok but the data of {len(missing)} table(s) is missing from "
                                  f"the dump folder ({', '.join(missing[:5])})", n, rels, header)
    listing.detail = f"pg_restore --list ok: {n} entries, {len(listing.of('TABLE DATA'))} tables with data"
    return listing


def dump_files(path: Path) -> list[Path]:
    """Files of a directory dump in a stable order (relative names, sorted bytewise)."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(path).as_posix().encode())


def dump_size(path: Path) -> int:
    """Bytes of a dump: a file's size, or the sum over a directory dump's files."""
    return sum(p.stat().st_size for p in dump_files(path)) if path.is_dir() else path.stat().st_size


def sha256_dump(path: str | os.PathLike) -> tuple[str, dict[str, str], int]:
    """(sha256, {file: sha256}, bytes) of a dump. A file: its own hash. A directory: the sha256 of
    ``"<sha256>  <name>\\n"`` over its files in name order (``LC_ALL=C sha256sum * | sha256sum``)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path), {}, path.stat().st_size
    files = dump_files(path)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        digests = list(pool.map(sha256_file, files))
    names = [p.relative_to(path).as_posix() for p in files]
    listing = "".join(f"{d}  {n}\n" for d, n in zip(digests, names))
    total = sum(p.stat().st_size for p in files)
    return hashlib.sha256(listing.encode()).hexdigest(), dict(zip(names, digests)), total
