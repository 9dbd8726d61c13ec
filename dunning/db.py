"""Small database helpers the engine's hot path uses."""

from __future__ import annotations

import sqlite3

from django.db import connections, transaction
from django.db.models.sql import UpdateQuery

# Upper bound per statement where the backend sets none we can read.
FALLBACK_MAX_PARAMS = 999


def max_query_params(connection) -> int:
    """The parameters one statement may carry on this connection.

    Django sizes ``bulk_create`` for SQLite by the historical default of 999; SQLite 3.32+
    allows 32,766, and Python 3.11 can read the real limit of the linked library.
    """
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        getlimit = getattr(connection.connection, "getlimit", None)
        if getlimit is not None:
            return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return FALLBACK_MAX_PARAMS
    if connection.vendor == "postgresql":
        return 65535
    return connection.features.max_query_params or FALLBACK_MAX_PARAMS


def insert_rows(model, rows, fields, using):
    """INSERT ``rows`` (dicts by field name) with as few multi-row statements as the
    database allows. Like ``bulk_create`` without instantiating models or RETURNING ids;
    values are prepared by the model's own fields, so dates, time zones and JSON are
    stored exactly as the ORM would store them."""
    if not rows:
        return
    connection = connections[using]
    opts = model._meta
    fields = [opts.get_field(name) for name in fields]
    qn = connection.ops.quote_name
    per_statement = max(1, min(max_query_params(connection) // len(fields), 5000))
    head = f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(f.column) for f in fields)}) VALUES "
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    preparers = [_Preparer(f, connection) for f in fields]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [p(row) for row in chunk for p in preparers]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)), params)


class _Preparer:
    """``field.get_db_prep_save`` with a memo for the hashable values a batch repeats
    (the run, its date, a status, an empty string), which is most columns."""

    __slots__ = ("name", "prep", "connection", "memo")

    def __init__(self, field, connection):
        self.name = field.name
        self.prep = field.get_db_prep_save
        self.connection = connection
        self.memo = {}

    def __call__(self, row):
        value = row[self.name]
        try:
            return self.memo[value]
        except KeyError:
            prepared = self.memo[value] = self.prep(value, self.connection)
            if len(self.memo) > 64:
                self.memo.clear()
            return prepared
        except TypeError:  # unhashable (JSON)
            return self.prep(value, self.connection)


def can_return_from_update(connection):
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 35)


def update_returning(queryset, values, fields):
    """``UPDATE`` the rows of ``queryset`` with ``values`` and return ``fields`` of exactly
    the rows this statement changed (``UPDATE ... RETURNING`` where the database has it;
    elsewhere the rows are locked first). A guard in the queryset (``status='queued'``)
    is checked again on a row another transaction changed meanwhile, so two workers that
    run this at once never both get the same row."""
    using = queryset.db
    connection = connections[using]
    columns = [queryset.model._meta.get_field(f).column for f in fields]
    if can_return_from_update(connection):
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(values)
        query.annotations = {}
        sql, params = query.get_compiler(using).as_sql()
        if not sql:
            return []
        returning = ", ".join(connection.ops.quote_name(c) for c in columns)
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {returning}", params)
            return [tuple(row) for row in cursor.fetchall()]
    with transaction.atomic(using=using):
        rows = list(queryset.select_for_update().values_list(*[f"{f}_id" if f == "case" else f
                                                                for f in fields]))
        if rows:
            queryset.model._default_manager.using(using).filter(
                pk__in=[row[0] for row in rows]
            ).update(**values)
        return rows
