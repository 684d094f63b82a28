"""ingest: every input record becomes a Document or a SkippedInput with a reason."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dedup.stages.ingest import IngestConfig, InputError, decode_bytes, read_documents

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
