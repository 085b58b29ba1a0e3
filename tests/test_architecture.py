"""The code's shape, enforced: SQL only under db/ (the Store seam), no comments citing files outside
the repository. The package graph itself is checked by import-linter (`make lint`, pyproject.toml)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "pingpost"
SQL = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\()",
    re.IGNORECASE | re.DOTALL,
)


def _python_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _strings(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            found.append((node.lineno, text))
    return found


def test_sql_lives_only_behind_the_store_seam() -> None:
    outside = [
        f"{path.relative_to(SRC)}:{line}: {text[:60]!r}"
        for path in _python_files()
        if path.relative_to(SRC).parts[0] != "db"
        for line, text in _strings(path)
        if SQL.match(text)
    ]
    assert outside == []


def test_the_check_finds_sql() -> None:
    """The detector itself: it must see the statement shapes the repositories use."""
    for text in (
        "SELECT 1 FROM pings WHERE id = :id",
        "INSERT INTO sales (id) VALUES (:id)",
        "UPDATE reservations SET state = 'sold'",
        "DELETE FROM api_keys WHERE id = :id",
        "WITH lc AS (SELECT 1)",
    ):
        assert SQL.match(text), text
    assert not SQL.match("select the winners"), "prose is not SQL"


def test_comments_cite_the_repository_docs_only() -> None:
    cited = [
        f"{path.relative_to(SRC)}:{n}"
        for path in _python_files()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"DESIGN(\.md)?\b|SPEC\b|SPEC\.md|STYLE\.md", line)
    ]
    assert cited == []


async def test_a_middleware_the_ping_fast_path_would_skip_stops_the_app(tmp_path: Path) -> None:
    """POST /v1/ping is served ahead of the middleware stack: a middleware it would skip is refused."""
    from starlette.middleware.base import BaseHTTPMiddleware

    from pingpost.app import create_app
    from pingpost.config import Settings

    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'p.db'}", secret_key="k", admin_token="t", key_file=str(tmp_path / "k")
        )
    )
    app.add_middleware(BaseHTTPMiddleware, dispatch=lambda request, call_next: call_next(request))
    try:
        app.build_middleware_stack()
    except RuntimeError as exc:
        assert "BaseHTTPMiddleware" in str(exc) and "/v1/ping" in str(exc)
    else:
        raise AssertionError("the app accepted a middleware its ping fast path skips")
    create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'q.db'}", secret_key="k", admin_token="t", key_file=str(tmp_path / "k")
        )
    ).build_middleware_stack()  # the default stack is fine
