"""Business database access: connections from `callfilter_db` and named SQL files from include/sql/."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from callfilter import codes

DEFAULT_CONN_ID = "callfilter_db"
SQL_DIR = Path(os.environ.get("CALLFILTER_SQL_DIR", Path(__file__).resolve().parents[2] / "include" / "sql"))
CODE_PARAMS = codes.sql_params()


@functools.cache
def sql(name: str) -> str:
    """The text of include/sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


# The lexemes of our SQL files: comments, quoted text ('...', "...", $tag$...$tag$), a semicolon, the rest.
_SQL_LEXEME = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?\*/)
      | \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*|)\$.*?\$(?P=tag)\$
      | '(?:[^']|'')*'
      | "(?:[^"]|"")*"
      | (?P<end>;)
      | [^-/$'";]+
      | .""",
    re.DOTALL | re.VERBOSE,
)


@functools.cache
def statements(name: str) -> list[str]:
    """The statements of a .sql file holding several, in order, comments dropped (a % in a comment is no
    placeholder). Split here, not by a general SQL parser: a task process splits its files anew, and
    sqlparse took tens of milliseconds a file."""
    found: list[str] = []
    current: list[str] = []
    for lexeme in _SQL_LEXEME.finditer(sql(name)):
        if lexeme["comment"] is not None:
            current.append(" ")
        elif lexeme["end"] is not None:
            found.append("".join(current).strip())
            current = []
        else:
            current.append(lexeme[0])
    found.append("".join(current).strip())
    return [statement for statement in found if statement]


def connect(conn_id: str = DEFAULT_CONN_ID) -> psycopg.Connection[dict[str, Any]]:
    """A psycopg connection (rows as dicts) to the database of Airflow connection `conn_id`.

    Opened by `PostgresHook.get_conn`, so every setting of the connection applies (its extras as libpq
    parameters: sslmode, sslrootcert, options, keepalives...; IAM auth). It autocommits: each
    `conn.transaction()` block is one real transaction, committed as it ends.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    conn.row_factory = dict_row
    return conn


async def aconnect(conn_id: str = DEFAULT_CONN_ID) -> psycopg.AsyncConnection[dict[str, Any]]:
    """`connect` for async code (the triggerer): the same libpq parameters as `PostgresHook.get_conn`."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.sdk import BaseHook

    conn = await BaseHook.aget_connection(conn_id)
    extra = conn.extra_dejson
    if extra.get("iam"):
        raise ValueError(f"connection {conn_id!r}: IAM auth is not available to the triggerer's queries")
    params = {
        "host": conn.host,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
        "port": conn.port,
        **{k: v for k, v in extra.items() if k not in PostgresHook.ignored_extra_options},
    }
    return await psycopg.AsyncConnection.connect(**params, row_factory=dict_row, autocommit=True)


def with_codes(params: dict[str, Any] | None) -> dict[str, Any]:
    """The params of a SQL file, with every code (`codes.sql_params()`, e.g. %(task_finished)s) added."""
    return {**CODE_PARAMS, **(params or {})}


def _execute_all(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None) -> None:
    for statement in statements(name):
        cur.execute(statement, params)


def run(conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None) -> int:
    """Execute every statement of a named SQL file; returns the last statement's row count."""
    with conn.cursor() as cur:
        _execute_all(cur, name, with_codes(params))
        return cur.rowcount


def last_row(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Execute every statement of a named SQL file whose last statement selects one row; return that row."""
    with conn.cursor() as cur:
        _execute_all(cur, name, with_codes(params))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"{name}.sql selected no row for {params}")
    return row


def one(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The first row of a named single-statement SQL file, or None."""
    with conn.cursor() as cur:
        cur.execute(sql(name), with_codes(params))
        return cur.fetchone()


def all_rows(
    conn: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql(name), with_codes(params))
        return cur.fetchall()


def apply_schema(conn: psycopg.Connection[Any]) -> None:
    """Create or bring up to date every table, index and dictionary row (idempotent)."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('callfilter schema'))")
        _execute_all(cur, "schema", None)
    conn.commit()
