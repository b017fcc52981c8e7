"""The STAC API Query extension (`{"query": {"grid:row": {"eq": 1}}}`) as CQL2 JSON (pure).

Each property's operators become CQL2 comparisons, AND-ed together and with any `filter`, so
the query goes through the same validation (queryables, types) and SQL as a filter does.
https://github.com/stac-api-extensions/query
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidParameter

__all__ = ["QUERY_CONFORMANCE", "query_to_cql2"]

QUERY_CONFORMANCE = "https://api.stacspec.org/v1.0.0/item-search#query"
_COMPARISONS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_PATTERNS = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
_OPERATORS = (*_COMPARISONS, *_PATTERNS, "in")


def _like_literal(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"{where}: expected a string, got {value!r}")
    # CQL2 LIKE wildcards in the value are matched literally.
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _clause(name: str, operator: str, value: Any) -> dict[str, Any]:
    where = f"query.{name}.{operator}"
    prop = {"property": name}
    if operator in _COMPARISONS:
        if isinstance(value, dict | list) or value is None:
            raise InvalidParameter(f"{where}: expected a string, number or boolean, got {value!r}")
        return {"op": _COMPARISONS[operator], "args": [prop, value]}
    if operator in _PATTERNS:
        pattern = _PATTERNS[operator].format(_like_literal(value, where))
        return {"op": "like", "args": [prop, pattern]}
    if not isinstance(value, list) or not value:
        raise InvalidParameter(f"{where}: expected a non-empty list of values")
    return {"op": "in", "args": [prop, value]}


def query_to_cql2(query: Any) -> dict[str, Any] | None:
    """`{"prop": {"op": value, ...}, ...}` -> CQL2 JSON; None for an empty query.

    Raises InvalidParameter naming the property or operator that is malformed or unknown.
    """
    if query is None:
        return None
    if not isinstance(query, dict):
        raise InvalidParameter(
            'query: expected an object such as {"grid:row": {"eq": 1}} (the Query extension)'
        )
    clauses = []
    for name, operators in query.items():
        if not isinstance(operators, dict) or not operators:
            raise InvalidParameter(
                f'query.{name}: expected an object of operators, e.g. {{"eq": 1}}; '
                f"operators: {', '.join(_OPERATORS)}"
            )
        for operator, value in operators.items():
            if operator not in _OPERATORS:
                raise InvalidParameter(
                    f"query.{name}.{operator}: unknown operator; use one of {', '.join(_OPERATORS)}"
                )
            clauses.append(_clause(str(name), operator, value))
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}
