"""Link cache: the scored candidate pairs of a corpus whose sentences have not changed.

Why: candidates and align are a function of the primary documents' sentences
(their texts, order, language groups and boilerplate mask), the model and
the settings, nothing else. A re-run of an unchanged corpus (a report
re-rendered, a nightly job over an archive that did not move) would compute
exactly the same evidence again: two minutes at 100,000 documents, and on a
small corpus mostly the fixed cost of loading the compiled loops. This
cache keeps the result of :func:`dedup.stages.link.link_documents` for such a corpus;
a run over a corpus that changed at all recomputes it (the null model and the
centring are corpus-wide, so no part of it can be reused) and still reads
every sentence vector from the embedding cache.

Key: a BLAKE2b digest of everything the links depend on, from
:func:`links_key`: this module's :data:`FORMAT`, the model fingerprint, the
candidate, align and cluster-threshold settings, the source of the modules
that compute and hold links (``candidates``, ``align``, ``kernels``, ``api``,
``records``), the numpy and faiss versions, and the corpus as the stages see
it (each primary sentence's text, document boundaries, boilerplate mask and
language groups).

Format: one ``.npz`` file per key in ``<cache>/links/``: the columns of the
:class:`~dedup.records.EvidenceTable` (pairs, scores, shorter-document
lengths, every aligned sentence pair of every linked pair as one record
array and where each pair's begin) and the document vectors. Written to a
temporary name and renamed into place, so a killed run leaves no torn file;
a file that cannot be read is deleted and recomputed. Only the
:data:`KEEP` most recently used files are kept (at 100,000 documents one
file is ~400 MB).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dedup.cache import library_version, source_digest
from dedup.records import EvidenceTable, PairEvidence

#: bump when the file layout or the meaning of a key part changes.
FORMAT = 2
#: files kept; the least recently used beyond this are deleted.
KEEP = 4
_CODE = (
    "dedup.stages.candidates",
    "dedup.stages.align",
    "dedup.stages.kernels",
    "dedup.stages.link",
    "dedup.records",
)


def links_key(
    *,
    fingerprint: str,
    settings: Sequence[object],
    sentences: Sequence[str],
    offsets: np.ndarray,
    usable: np.ndarray,
    doc_groups: np.ndarray,
    group_names: Sequence[str],
) -> str:
    """The hex key of the links of a corpus (see the module docstring).

    Args:
        fingerprint: the encoder's fingerprint.
        settings: the settings objects links depend on (their ``repr`` is hashed).
        sentences: the primary documents' sentences, one document after another.
        offsets: ``(n_docs + 1,)`` where each document's sentences start.
        usable: ``(n_sent,)`` False for boilerplate.
        doc_groups: ``(n_docs,)`` language group of each document, as indices
            into ``group_names``.
        group_names: the language groups.
    """
    digest = hashlib.blake2b(digest_size=20)
    header = [
        f"format {FORMAT}",
        fingerprint,
        *map(repr, settings),
        *(f"{module} {source_digest(module)}" for module in _CODE),
        f"numpy {np.__version__}",
        f"faiss {library_version('faiss-cpu')}",
        *group_names,
    ]
    digest.update("\n".join(header).encode())
    for array in (offsets, usable, doc_groups):
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    for sentence in sentences:
        data = sentence.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


class LinkCache:
    """Links of whole corpora on disk, by :func:`links_key`.

    Args:
        folder: ``<cache>/links``; made when missing.
        keep: files kept (least recently used deleted beyond it).
    """

    def __init__(self, folder: Path, keep: int = KEEP) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def get(self, key: str) -> tuple[EvidenceTable, np.ndarray] | None:
        """The evidence and document vectors stored under ``key``, or None."""
        path = self.folder / f"{key}.npz"
        try:
            evidence, arrays = EvidenceTable.load(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # torn or foreign: recomputed
            return None
        os.utime(path)  # most recently used
        return evidence, arrays["doc_vectors"]

    def put(self, key: str, evidence: Sequence[PairEvidence], doc_vectors: np.ndarray) -> None:
        """Store links under ``key`` (atomically), then drop the least recently used files."""
        self.folder.mkdir(parents=True, exist_ok=True)
        table = EvidenceTable.of(evidence)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                table.save(handle, doc_vectors=doc_vectors)
            os.replace(tmp, self.folder / f"{key}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        stored = sorted(self.folder.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in stored[self.keep :]:
            old.unlink(missing_ok=True)
