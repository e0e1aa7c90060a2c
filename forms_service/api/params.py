"""Types of the API's path and query parameters, shared by every endpoint: a database id
and a page number stay within what the databases can hold (a 64-bit integer), so that an
absurd value is a 400 in French, never an overflow deep in a query."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: PostgreSQL's bigint and SQLite's INTEGER hold at most this.
MAX_DB_INT = 2**63 - 1

#: A row's id (beneficiary, record, user...).
RowId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]

#: A page of a paginated list (offset = (page - 1) × per_page must fit the database too).
PageNumber = Annotated[int, Field(ge=1, le=10_000_000)]
