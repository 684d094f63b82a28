"""ingest: every input record becomes a Document or a SkippedInput with a reason."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from dedup.stages.ingest import IngestConfig, InputError, decode_bytes, read_documents
from tests.html_pages import (
    DATE,
    ENGLISH,
    FURNITURE,
    GREEK,
    OTHERS,
    headline,
    news_page,
    paragraphs,
)

# Long enough for the charset detector to be sure of a legacy single-byte encoding.
FRENCH = (
    "Le président de la République a annoncé mercredi une série de réformes économiques. "
    "Les syndicats ont réagi avec prudence à ces déclarations, évoquant des négociations "
    "difficiles. Selon le ministre, la croissance française devrait atteindre deux pour cent "
    "l'année prochaine, grâce à l'investissement privé. Les élèves, les étudiants et leurs "
    "familles attendent des précisions sur le budget de l'éducation."
)


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- folder ----------------------------------------------------------------


def test_folder_ids_are_relative_paths_without_extension(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("Alpha text.", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Beta\n\nBeta text.", encoding="utf-8")
    (tmp_path / "sub" / "deeper" / "c.TXT").write_text("Gamma text.", encoding="utf-8")
    (tmp_path / "notes.json").write_text('{"id": "x", "text": "ignored"}', encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "README").write_text("no extension, ignored", encoding="utf-8")

    docs, skipped, _ = read_documents(tmp_path)

    assert [d.id for d in docs] == ["a", "sub/b", "sub/deeper/c"]
    assert [d.origin for d in docs] == ["a.txt", "sub/b.md", "sub/deeper/c.TXT"]
    assert docs[1].text == "# Beta\n\nBeta text."
    assert skipped == []  # files of other types are not inputs at all


def test_folder_empty_file_is_skipped_with_reason(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text(" \n\t\n", encoding="utf-8")
    (tmp_path / "ok.txt").write_text("Some text.", encoding="utf-8")
    docs, skipped, _ = read_documents(tmp_path)
    assert [d.id for d in docs] == ["ok"]
    assert len(skipped) == 1
    assert skipped[0].origin == "empty.txt" and skipped[0].reason == "empty text"
    assert skipped[0].doc_id == "empty"


def test_folder_same_id_from_txt_and_md_is_a_duplicate(tmp_path: Path) -> None:
    (tmp_path / "story.md").write_text("First.", encoding="utf-8")
    (tmp_path / "story.txt").write_text("Second.", encoding="utf-8")
    docs, skipped, _ = read_documents(tmp_path)
    assert [(d.id, d.origin) for d in docs] == [("story", "story.md")]
    assert len(skipped) == 1 and "duplicate id" in skipped[0].reason
    assert "story.md" in skipped[0].reason


# --- JSONL -----------------------------------------------------------------


def test_jsonl_metadata_and_extra_fields(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            json.dumps(
                {
                    "id": "n1",
                    "text": "Hello world.",
                    "title": "Greeting",
                    "url": "https://example.org/n1",
                    "date": "2024-05-01",
                    "lang": "en",
                    "source": "wire",
                    "tags": ["a", "b"],
                    "words": 2,
                }
            ),
            json.dumps({"id": 7, "text": "Numeric id."}),
        ],
    )
    docs, skipped, _ = read_documents(path)
    assert skipped == []
    first, second = docs
    assert (first.id, first.text, first.origin) == ("n1", "Hello world.", "corpus.jsonl:1")
    assert (first.title, first.url, first.date, first.lang) == (
        "Greeting",
        "https://example.org/n1",
        "2024-05-01",
        "en",
    )
    assert first.extra == {"source": "wire", "tags": ["a", "b"], "words": 2}
    assert second.id == "7" and second.title is None and second.extra == {}


def test_jsonl_bad_records_are_skipped_with_line_and_reason(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"id": "a", "text": "Good one."}),  # 1
            '{"id": "b", "text": "unterminated',  # 2 malformed
            json.dumps({"id": "c"}),  # 3 missing text
            json.dumps({"id": "d", "text": 42}),  # 4 not a string
            json.dumps({"id": "e", "text": "   \n "}),  # 5 empty
            json.dumps({"id": "a", "text": "Same id again."}),  # 6 duplicate
            "",  # 7 blank: not a record
            json.dumps(["not", "an", "object"]),  # 8
            json.dumps({"text": "No id."}),  # 9
            json.dumps({"id": "f", "text": "Good two."}),  # 10
        ],
    )
    docs, skipped, _ = read_documents(path)
    assert [d.id for d in docs] == ["a", "f"]
    assert docs[0].text == "Good one."  # the first of two duplicates wins
    reasons = {s.origin: s.reason for s in skipped}
    assert set(reasons) == {f"corpus.jsonl:{n}" for n in (2, 3, 4, 5, 6, 8, 9)}
    assert reasons["corpus.jsonl:2"].startswith("malformed JSON")
    assert "missing" in reasons["corpus.jsonl:3"]
    assert "not a string" in reasons["corpus.jsonl:4"] and "int" in reasons["corpus.jsonl:4"]
    assert reasons["corpus.jsonl:5"] == "empty text"
    assert "duplicate id" in reasons["corpus.jsonl:6"]
    assert "corpus.jsonl:1" in reasons["corpus.jsonl:6"]  # names where the first was seen
    assert "not an object" in reasons["corpus.jsonl:8"]
    assert "'id'" in reasons["corpus.jsonl:9"]
    assert {s.doc_id for s in skipped if s.origin.endswith((":3", ":4", ":5", ":6"))} == {
        "c",
        "d",
        "e",
        "a",
    }


def test_jsonl_custom_fields(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "c.ndjson",
        [json.dumps({"url": "u1", "body": "Body text.", "id": "kept-as-extra"})],
    )
    docs, skipped, _ = read_documents(path, IngestConfig(id_field="url", text_field="body"))
    assert skipped == []
    assert docs[0].id == "u1" and docs[0].text == "Body text."
    # "url" is the id here, so it is not also metadata; "id" is just another field
    assert docs[0].extra == {"id": "kept-as-extra"}


def test_jsonl_with_utf8_bom_and_crlf(tmp_path: Path) -> None:
    lines = [json.dumps({"id": "a", "text": "One\r\ntwo"}), json.dumps({"id": "b", "text": "x"})]
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    docs, skipped, _ = read_documents(path)
    assert skipped == []
    assert [d.id for d in docs] == ["a", "b"]
    assert docs[0].text == "One\ntwo"


def test_text_is_nfc_and_free_of_control_characters(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "c.jsonl", [json.dumps({"id": "a", "text": "Cafe\u0301\x00 ok\x07"})]
    )
    docs, _, _ = read_documents(path)
    assert docs[0].text == "Café ok"


# --- CSV / TSV -------------------------------------------------------------


def test_csv_quoted_multiline_cell(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "id,text,title\n"
        'a,"First line, with a comma.\nSecond line ""quoted"".",T1\n'
        "b,Plain text.,T2\n",
        encoding="utf-8",
    )
    docs, skipped, _ = read_documents(path)
    assert skipped == []
    assert [d.id for d in docs] == ["a", "b"]
    assert docs[0].text == 'First line, with a comma.\nSecond line "quoted".'
    assert docs[0].title == "T1"
    # a record spanning lines is named by its first and last line
    assert [d.origin for d in docs] == ["c.csv:2-3", "c.csv:4"]


def test_csv_records_after_blank_lines_are_named_by_their_own_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text\n\na,"x\ny"\n\n\nb,z\nc\n', encoding="utf-8")
    docs, skipped, _ = read_documents(path)
    assert [(d.id, d.origin) for d in docs] == [("a", "c.csv:3-4"), ("b", "c.csv:7")]
    # a row with fewer cells than the header lacks its text
    assert [(s.origin, s.doc_id) for s in skipped] == [("c.csv:8", "c")]


def test_csv_unquoted_cell_with_unicode_line_separator_stays_one_row(tmp_path: Path) -> None:
    # csv.writer quotes only CR/LF, so U+2028 (common in scraped text), NEL or a
    # form feed stay unquoted: they must not end the row.
    path = tmp_path / "c.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerow(["a", "first\u2028second"])
        writer.writerow(["b", "page\x0cbreak"])
        writer.writerow(["c", "plain"])
    docs, skipped, _ = read_documents(path)
    assert skipped == []
    assert [d.id for d in docs] == ["a", "b", "c"]
    assert docs[0].text == "first\u2028second"
    assert docs[1].text == "page\nbreak"  # a form feed is a line break after normalisation


def test_tsv_with_custom_fields_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text(
        "key\tbody\tsection\nk1\tText one, with comma.\tworld\nk2\tText two.\tsport\n",
        encoding="utf-8",
    )
    docs, skipped, _ = read_documents(path, IngestConfig(id_field="key", text_field="body"))
    assert skipped == []
    assert [(d.id, d.text) for d in docs] == [("k1", "Text one, with comma."), ("k2", "Text two.")]
    assert docs[0].extra == {"section": "world"}


def test_csv_missing_column_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,body\na,Text.\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_documents(path)
    message = str(err.value)
    assert str(path) in message and "text" in message


def test_csv_row_with_too_many_cells_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,text\na,One.\nb,Two.,extra\nc,Three.\n", encoding="utf-8")
    docs, skipped, _ = read_documents(path)
    assert [d.id for d in docs] == ["a", "c"]
    assert len(skipped) == 1 and skipped[0].origin == "c.csv:3"
    assert "more cells" in skipped[0].reason


def test_csv_utf16_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("id,text\nr1,Ελληνικό κείμενο.\n".encode("utf-16"))
    docs, skipped, _ = read_documents(path)
    assert skipped == []
    assert [(d.id, d.text) for d in docs] == [("r1", "Ελληνικό κείμενο.")]


# --- Parquet ---------------------------------------------------------------


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    table = pa.table(
        {
            "id": ["p1", "p2", "p3", "p1"],
            "text": ["Parquet text one.", None, "Parquet text three.", "dup"],
            "title": ["T1", "T2", None, "T4"],
            "views": [10, 20, 30, 40],
        }
    )
    pq.write_table(table, path, row_group_size=2)  # several batches
    docs, skipped, _ = read_documents(path)
    assert [d.id for d in docs] == ["p1", "p3"]
    assert docs[0].title == "T1" and docs[1].title is None
    assert docs[0].extra == {"views": 10}
    assert [s.origin for s in skipped] == ["c.parquet:row 2", "c.parquet:row 4"]
    assert "missing" in skipped[0].reason and "duplicate" in skipped[1].reason


def test_parquet_missing_column_raises(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), path)
    with pytest.raises(InputError, match="text"):
        read_documents(path)


def test_corrupt_parquet_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"c\.parquet"):
        read_documents(path)


# --- whole-input errors ----------------------------------------------------


def test_unknown_extension_raises(tmp_path: Path) -> None:
    path = tmp_path / "corpus.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InputError) as err:
        read_documents(path)
    assert str(path) in str(err.value) and ".xlsx" in str(err.value)


def test_missing_path_raises(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with pytest.raises(InputError) as err:
        read_documents(path)
    assert str(path) in str(err.value)


# --- encodings -------------------------------------------------------------


def test_folder_encodings_are_detected(tmp_path: Path) -> None:
    greek = "Η κυβέρνηση ανακοίνωσε νέο σχέδιο."
    (tmp_path / "bom8.txt").write_bytes(b"\xef\xbb\xbf" + greek.encode("utf-8"))
    (tmp_path / "utf16le.txt").write_bytes(greek.encode("utf-16"))  # with BOM
    (tmp_path / "utf16be.txt").write_bytes(b"\xfe\xff" + greek.encode("utf-16-be"))
    (tmp_path / "cp1252.txt").write_bytes((FRENCH + " Coût : 5 € — « fin ».").encode("cp1252"))
    (tmp_path / "latin1.txt").write_bytes(FRENCH.encode("latin-1"))
    (tmp_path / "crlf.txt").write_bytes(b"line one\r\nline two\rline three\r\n")
    docs, skipped, _ = read_documents(tmp_path)
    assert skipped == []
    text = {d.id: d.text for d in docs}
    assert text["bom8"] == greek and "\ufeff" not in text["bom8"]
    assert text["utf16le"] == greek
    assert text["utf16be"] == greek
    assert text["cp1252"] == FRENCH + " Coût : 5 € — « fin »."
    assert text["latin1"] == FRENCH
    assert text["crlf"] == "line one\nline two\nline three\n"


def test_binary_file_is_skipped_with_reason(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    (tmp_path / "junk.txt").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    (tmp_path / "ok.txt").write_text("Real text.", encoding="utf-8")
    docs, skipped, _ = read_documents(tmp_path)
    assert [d.id for d in docs] == ["ok"]
    assert len(skipped) == 1
    assert skipped[0].origin == "junk.txt" and "binary" in skipped[0].reason


def test_decode_bytes() -> None:
    assert decode_bytes(b"plain ascii") == "plain ascii"
    assert decode_bytes(b"\xef\xbb\xbfbom") == "bom"
    assert decode_bytes("ünï".encode("utf-16")) == "ünï"
    assert decode_bytes(FRENCH.encode("cp1252")) == FRENCH


# --- compressed files ------------------------------------------------------

RECORDS = [{"id": f"r{n}", "text": f"Text number {n}.", "title": f"T{n}"} for n in range(3)]


def _compress(data: bytes, suffix: str) -> bytes:
    import bz2
    import gzip
    import lzma

    import zstandard

    return {
        ".gz": gzip.compress,
        ".bz2": bz2.compress,
        ".xz": lzma.compress,
        ".zst": zstandard.ZstdCompressor().compress,
    }[suffix](data)


def _table_bytes(records: list[dict[str, str]], delimiter: str = ",") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(records[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode("utf-8")


def _jsonl_bytes(records: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


@pytest.mark.parametrize(
    "name",
    [
        "corpus.jsonl.gz",
        "corpus.jsonl.zst",
        "corpus.jsonl.bz2",
        "corpus.jsonl.xz",
        "corpus.csv.gz",
        "corpus.tsv.xz",
        "corpus.NDJSON.GZ",
    ],
)
def test_compressed_inputs_read_like_plain_ones(tmp_path: Path, name: str) -> None:
    form, compression = (s.lower() for s in Path(name).suffixes)
    if form == ".csv":
        plain = _table_bytes(RECORDS)
    elif form == ".tsv":
        plain = _table_bytes(RECORDS, "\t")
    else:
        plain = _jsonl_bytes(RECORDS)
    path = tmp_path / name
    path.write_bytes(_compress(plain, compression))
    docs, skipped, records = read_documents(path)
    assert skipped == [] and records == 3
    assert [(d.id, d.text, d.title) for d in docs] == [
        (r["id"], r["text"], r["title"]) for r in RECORDS
    ]
    first_line = 2 if form in (".csv", ".tsv") else 1  # a table's line 1 is its header
    assert docs[0].origin == f"{name}:{first_line}"
    assert list(tmp_path.iterdir()) == [path]  # nothing unpacked beside it


@pytest.mark.parametrize("compression", [".gz", ".zst", ".bz2", ".xz"])
def test_bad_bytes_inside_a_compressed_file_are_skipped_with_their_line(
    tmp_path: Path, compression: str
) -> None:
    junk = bytes(b for b in range(256) if b != 0x0A) * 8  # binary, no line break
    plain = b"\n".join(
        [
            json.dumps({"id": "a", "text": "Good one."}).encode(),
            junk,  # 2
            b'{"id": "b", "text": "unterminated',  # 3
            json.dumps({"id": "c", "text": "Good two."}).encode(),
        ]
    )
    path = tmp_path / f"dump.jsonl{compression}"
    path.write_bytes(_compress(plain + b"\n", compression))
    docs, skipped, records = read_documents(path)
    assert [d.id for d in docs] == ["a", "c"] and records == 4
    reasons = {s.origin: s.reason for s in skipped}
    assert set(reasons) == {f"dump.jsonl{compression}:2", f"dump.jsonl{compression}:3"}
    assert "binary" in reasons[f"dump.jsonl{compression}:2"]
    assert reasons[f"dump.jsonl{compression}:3"].startswith("malformed JSON")


def _many_records(count: int) -> list[dict[str, str]]:
    import random

    rng = random.Random(7)  # random digits: the data must not compress to nothing
    return [{"id": f"d{n}", "text": f"Record {n}: {rng.getrandbits(256):x}."} for n in range(count)]


@pytest.mark.parametrize("name", ["cut.jsonl.gz", "cut.jsonl.zst", "cut.jsonl.xz", "cut.csv.zst"])
def test_a_truncated_compressed_file_keeps_what_was_read_and_reports_where_it_broke(
    tmp_path: Path, name: str
) -> None:
    form, compression = Path(name).suffixes
    records = _many_records(20_000)
    plain = _table_bytes(records) if form == ".csv" else _jsonl_bytes(records)
    packed = _compress(plain, compression)
    path = tmp_path / name
    path.write_bytes(packed[: len(packed) // 2])
    docs, skipped, count = read_documents(path)
    assert 0 < len(docs) < len(records)
    assert [d.id for d in docs] == [r["id"] for r in records[: len(docs)]]  # in order, none lost
    *_, last = skipped
    header = 1 if form == ".csv" else 0
    # the record after the last complete one, or the line a partial last record began on
    assert last.origin in (
        f"{name}:{len(docs) + header + 1}",
        f"{name}:{len(docs) + header + 2}",
    )
    assert "compressed data broken" in last.reason and "rest of the file" in last.reason
    assert count == len(docs) + len(skipped)


def test_a_file_that_is_not_what_its_compression_suffix_says_is_an_input_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(_jsonl_bytes(RECORDS))  # plain JSONL named .gz
    with pytest.raises(InputError, match=r"corpus\.jsonl\.gz: not readable as \.gz data"):
        read_documents(path)


def test_zstd_file_of_several_frames_is_read_whole(tmp_path: Path) -> None:
    # pzstd and `cat a.zst b.zst` write several frames; each must be read
    path = tmp_path / "joined.jsonl.zst"
    path.write_bytes(
        _compress(_jsonl_bytes(RECORDS[:2]), ".zst") + _compress(_jsonl_bytes(RECORDS[2:]), ".zst")
    )
    docs, skipped, _ = read_documents(path)
    assert skipped == [] and [d.id for d in docs] == ["r0", "r1", "r2"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [("corpus.gz", ".gz"), ("corpus.parquet.gz", ".parquet.gz"), ("corpus.txt.zst", ".txt.zst")],
)
def test_compression_without_a_readable_content_suffix_is_an_input_error(
    tmp_path: Path, name: str, shown: str
) -> None:
    path = tmp_path / name
    path.write_bytes(_compress(b"x\n", Path(name).suffix))
    with pytest.raises(InputError) as err:
        read_documents(path)
    message = str(err.value)
    # what it is, and what would be read: the example names a compressed form
    assert f"unknown input format '{shown}'" in message and "corpus.jsonl.gz" in message


# --- stdin -----------------------------------------------------------------


def test_dash_reads_jsonl_from_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = _jsonl_bytes(RECORDS[:2]) + b"not json\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(lines)))
    docs, skipped, _ = read_documents("-")
    assert [(d.id, d.origin) for d in docs] == [("r0", "<stdin>:1"), ("r1", "<stdin>:2")]
    assert [s.origin for s in skipped] == ["<stdin>:3"]


def test_a_path_named_dash_is_a_file_not_stdin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unknown input format"):
        read_documents(Path("-"))


# --- several inputs --------------------------------------------------------


def test_several_inputs_are_read_in_order_with_origins_naming_each(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(_jsonl_bytes([{"id": "j1", "text": "From JSONL."}]))
    parquet = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": ["p1"], "text": ["From Parquet."]}), parquet)
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "f1.txt").write_text("From a folder.", encoding="utf-8")

    docs, skipped, records = read_documents([jsonl, parquet, folder])
    assert skipped == [] and records == 3
    assert [(d.id, d.origin) for d in docs] == [
        ("j1", f"{jsonl}:1"),
        ("p1", f"{parquet}:row 1"),
        ("f1", f"{folder}/f1.txt"),
    ]


def test_an_id_in_two_inputs_is_a_duplicate_naming_where_it_was_first_seen(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, text in ((first, "First version."), (second, "Second version.")):
        folder.mkdir()
        (folder / "story.txt").write_text(text, encoding="utf-8")
    (second / "other.txt").write_text("Another story.", encoding="utf-8")
    docs, skipped, _ = read_documents([first, second])
    assert [(d.id, d.text) for d in docs] == [
        ("story", "First version."),
        ("other", "Another story."),
    ]
    assert [(s.origin, s.doc_id) for s in skipped] == [(f"{second}/story.txt", "story")]
    assert skipped[0].reason == f"duplicate id, first seen at {first}/story.txt"


def test_the_same_input_twice_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_jsonl_bytes(RECORDS))
    with pytest.raises(InputError, match="given twice"):
        read_documents([path, tmp_path / "." / "a.jsonl"])
    with pytest.raises(InputError, match="given twice"):
        read_documents(["-", "-"])


def test_no_input_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no input"):
        read_documents([])


# --- HTML ------------------------------------------------------------------


def test_html_page_in_a_folder_keeps_the_article_and_drops_the_furniture(tmp_path: Path) -> None:
    (tmp_path / "en.html").write_text(news_page(ENGLISH), encoding="utf-8")
    # a page in a legacy charset, declared in its own <meta>
    (tmp_path / "el.htm").write_bytes(
        news_page(GREEK, lang="el")
        .replace('charset="utf-8"', 'charset="iso-8859-7"')
        .encode("iso-8859-7", errors="xmlcharrefreplace")
    )
    docs, skipped, _ = read_documents(tmp_path)
    assert skipped == []
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["el", "en"]
    for doc_id, stem in (("en", ENGLISH), ("el", GREEK)):
        doc = by_id[doc_id]
        for paragraph in paragraphs(stem):
            assert paragraph in doc.text, (doc_id, paragraph)
        for furniture in FURNITURE:
            assert furniture not in doc.text, (doc_id, furniture)
        for other in OTHERS:  # the related links' headlines
            assert headline(other) not in doc.text
        assert doc.title is not None and doc.title.startswith(headline(stem).split()[0])
        assert doc.date == DATE
        assert doc.url == f"https://daily.example.org/{'el' if doc_id == 'el' else 'en'}/{stem}"
        assert doc.extra == {}  # the page itself is not carried along


def test_html_field_of_jsonl_csv_and_parquet_records(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    page = news_page(ENGLISH)
    jsonl = tmp_path / "pages.jsonl"
    jsonl.write_bytes(
        _jsonl_bytes(
            [
                {"id": "j-page", "html": page, "source": "crawl"},
                # the record's own title wins over the page's
                {"id": "j-titled", "html": page, "title": "Given title"},
                # text given: the page is not read
                {"id": "j-text", "text": "Plain text wins.", "html": page},
                {
                    "id": "j-empty",
                    "html": "<html><head><title>Gone</title></head><body></body></html>",
                },
                {"id": "j-number", "html": 5},
            ]
        )
    )
    table = tmp_path / "pages.csv"
    table.write_bytes(_table_bytes([{"id": "c-page", "html": page}]))
    parquet = tmp_path / "pages.parquet"
    pq.write_table(pa.table({"id": ["p-page"], "html": [page]}), parquet)

    docs, skipped, _ = read_documents([jsonl, table, parquet])
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["c-page", "j-page", "j-text", "j-titled", "p-page"]
    for doc_id in ("c-page", "j-page", "p-page"):
        assert paragraphs(ENGLISH)[1] in by_id[doc_id].text
        assert "We use cookies" not in by_id[doc_id].text
        assert by_id[doc_id].date == DATE
    assert by_id["j-page"].extra == {"source": "crawl"}
    assert by_id["j-titled"].title == "Given title" and by_id["j-titled"].date == DATE
    assert by_id["j-text"].text == "Plain text wins." and by_id["j-text"].title is None
    reasons = {s.doc_id: s.reason for s in skipped}
    assert reasons == {
        "j-empty": "no article text found in the HTML",
        "j-number": "'html' is not a string (int)",
    }


def test_table_with_an_html_column_instead_of_text_is_accepted_but_without_either_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,body\na,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"lacks column\(s\) text"):
        read_documents(path)


# --- folder edge cases -----------------------------------------------------


def test_file_name_that_is_not_utf8_is_read_with_an_escaped_id(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # latin-1 "café.txt", as old archives hold
    try:
        (tmp_path / name).write_text("Un article.", encoding="utf-8")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    (tmp_path / "ok.txt").write_text("Another.", encoding="utf-8")
    docs, skipped, _ = read_documents(tmp_path)
    assert skipped == []
    assert [(d.id, d.origin) for d in docs] == [("caf\\xe9", "caf\\xe9.txt"), ("ok", "ok.txt")]
    docs[0].id.encode("utf-8")  # writable: no surrogates left
    # reversible: each \xNN is the byte
    back = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), docs[0].origin.encode())
    assert back == b"caf\xe9.txt"


def test_symlink_loop_is_not_followed_and_symlinked_files_are_read(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("Alpha.", encoding="utf-8")
    (root / "sub" / "b.txt").write_text("Beta.", encoding="utf-8")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # docs/sub/loop -> docs
    (root / "self").symlink_to(root / "self")  # a link to itself
    (tmp_path / "outside.txt").write_text("Linked in.", encoding="utf-8")
    (root / "linked.txt").symlink_to(tmp_path / "outside.txt")
    docs, skipped, _ = read_documents(root)
    assert [d.id for d in docs] == ["a", "linked", "sub/b"]
    assert skipped == []


def test_excluded_folder_inside_the_input_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "story.txt").write_text("The article.", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    for report in ("report.md", "report.html"):
        (out / report).write_text("# dedup report\n\nclusters 1", encoding="utf-8")
    # spelled another way than the folder walk meets it: still the same folder
    config = IngestConfig(exclude=(str(tmp_path / "." / "out"),))
    docs, skipped, _ = read_documents(tmp_path, config)
    assert [d.id for d in docs] == ["story"] and skipped == []
    # without it the reports are read (the second of the two as a duplicate id)
    assert sorted(d.id for d in read_documents(tmp_path).documents) == ["out/report", "story"]
    with pytest.raises(InputError, match="output folder"):
        read_documents(out, config)


def test_lone_surrogates_spelled_in_json_are_escaped_so_the_report_can_be_written(
    tmp_path: Path,
) -> None:
    # a scraper that cut an emoji in half wrote "\ud83d" alone; a whole pair is one character
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "x\\ud83d", "text": "Cut \\ud83d here.", "title": "T\\ud83d", '
        '"tags": ["a\\udc00"], "whole": "\\ud83d\\ude00"}\n',
        encoding="utf-8",
    )
    (doc,), skipped, _ = read_documents(path)
    assert skipped == []
    assert (doc.id, doc.title, doc.text) == ("x\\ud83d", "T\\ud83d", "Cut  here.")
    assert doc.extra == {"tags": ["a\\udc00"], "whole": "\U0001f600"}
    json.dumps([doc.id, doc.title, doc.extra], ensure_ascii=False).encode("utf-8")
