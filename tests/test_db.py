"""Business database access: the connection's settings in full, and SQL files split as PostgreSQL reads them."""

from __future__ import annotations

import asyncio
import json

import pytest

from callfilter import db as business_db


def test_the_connections_extras_reach_the_server_from_workers_and_the_triggerer(db, monkeypatch):
    conn = json.loads(db.conn_uri())
    extra = {"options": "-c statement_timeout=4321", "application_name": "callfilter-test", "keepalives": 1}
    monkeypatch.setenv("AIRFLOW_CONN_CALLFILTER_DB", json.dumps({**conn, "extra": extra}))
    query = (
        "select current_setting('statement_timeout') as timeout, current_setting('application_name') as app"
    )

    with business_db.connect() as conn:
        row = conn.execute(query).fetchone()
        assert conn.autocommit
    assert row == {"timeout": "4321ms", "app": "callfilter-test"}

    async def from_the_triggerer() -> dict:
        async with await business_db.aconnect() as conn:
            return await (await conn.execute(query)).fetchone()

    assert asyncio.run(from_the_triggerer()) == {"timeout": "4321ms", "app": "callfilter-test"}


def test_sql_files_split_on_statements_not_on_semicolons_inside_them(tmp_path, monkeypatch):
    (tmp_path / "several.sql").write_text(
        "-- a comment; with a semicolon and 100% of a placeholder\n"
        "create table t (a text default ';', \"b;c\" text default 'it''s; quoted');\n"
        "do $$\nbegin\n  if true then\n    raise notice 'one; two';\n  end if;\nend\n$$;\n"
        "create function f() returns int language sql as $body$ select 1; $body$;\n"
        "insert into t /* a block; comment */ values (%(a)s); select 1 - 2 / 1 -- trailing\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(business_db, "SQL_DIR", tmp_path)
    business_db.sql.cache_clear()
    business_db.statements.cache_clear()
    try:
        parts = business_db.statements("several")
    finally:
        business_db.sql.cache_clear()
        business_db.statements.cache_clear()
    assert parts[0] == "create table t (a text default ';', \"b;c\" text default 'it''s; quoted')"
    assert parts[1].startswith("do $$") and "raise notice 'one; two';" in parts[1] and parts[1].endswith("$$")
    assert parts[2] == "create function f() returns int language sql as $body$ select 1; $body$"
    assert [" ".join(p.split()) for p in parts[3:]] == ["insert into t values (%(a)s)", "select 1 - 2 / 1"]


def test_every_sql_file_splits_as_a_general_sql_parser_splits_it():
    """Our splitter against sqlparse's (which it replaced: tens of milliseconds a file in every task
    process), on every file we ship: the same statements, comments dropped, up to whitespace."""
    import sqlparse

    def by_sqlparse(text: str) -> list[str]:
        parts = (sqlparse.format(part, strip_comments=True) for part in sqlparse.split(text))
        return [" ".join(part.split()).rstrip(";").rstrip() for part in parts if part.strip()]

    paths = sorted(business_db.SQL_DIR.glob("*.sql"))
    assert len(paths) > 50
    for path in paths:
        ours = [" ".join(statement.split()) for statement in business_db.statements(path.stem)]
        assert ours == by_sqlparse(path.read_text(encoding="utf-8")), path.name


def test_a_missing_or_wrong_database_connection_is_named_and_its_password_never_shown(db, monkeypatch):
    from airflow.exceptions import AirflowNotFoundException
    from psycopg import OperationalError

    from callfilter.errors import is_final

    conn = json.loads(db.conn_uri())
    monkeypatch.delenv("AIRFLOW_CONN_CALLFILTER_DB")
    with pytest.raises(AirflowNotFoundException, match="callfilter_db"):
        business_db.connect()
    # A wrong database (or password) is an error of the server, retried by Airflow; the password stays out.
    wrong = {**conn, "schema": "no_such_database", "password": "pa55-n0t-sh0wn"}
    monkeypatch.setenv("AIRFLOW_CONN_CALLFILTER_DB", json.dumps(wrong))
    with pytest.raises(OperationalError, match="no_such_database") as err:
        business_db.connect()
    assert not is_final(err.value) and "pa55-n0t-sh0wn" not in str(err.value)
