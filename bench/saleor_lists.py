"""A Saleor that serves a big shop's lists fast, for `bench/import.py`.

The first node of each list is produced by executing the app's own import document
against Saleor's schema over a FakeShop object (tests/simulator): the exact shape Saleor
answers. That node's JSON text becomes a `%`-format string, and every other node is that
text with its own ids, numbers, buyers and times substituted (no per-object copying or
JSON encoding), so the simulator's cost stays far below the app's. Every
document the app sends is still validated against Saleor's schema (once per distinct
text) and paged as Saleor pages: `first` ≤ 100, opaque `after` cursors, `pageInfo`,
`totalCount`.

Run as a process: `python bench/saleor_lists.py PORT ORDERS CUSTOMERS CHECKOUTS`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphql import execute_sync, parse, validate  # noqa: E402

from plugin.saleor.client import load_query  # noqa: E402
from tests.saleor_schema import saleor_schema  # noqa: E402
from tests.simulator import FakeShop  # noqa: E402
from tests.simulator.lists import lists  # noqa: E402

JSON = dict[str, Any]
START = datetime(2021, 1, 1, tzinfo=UTC)
FIELDS = {"ImportOrders": "orders", "ImportCustomers": "customers", "ImportCheckouts": "checkouts"}


def gid(kind: str, n: int) -> str:
    return base64.b64encode(f"{kind}:{n}".encode()).decode()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def templates() -> dict[str, JSON]:
    """One node of each list, as Saleor answers the app's import documents."""
    shop = FakeShop()
    shop.create_customer("t@example.com", first_name="Tess", last_name="Ter", phone="+12025550100")
    user = shop.user_id("t@example.com")
    shop.create_checkout(user_id=user, lines=[("Mug", "MUG-1", "Kitchen", 1, 12.5)])
    shop.create_order(user_id=user, lines=[("Mug", "MUG-1", "Kitchen", 2, 12.5)], paid=True)
    nodes = {}
    for field in FIELDS.values():
        name = "import_" + field
        document = parse(load_query(name))  # with its shared fragments
        result = execute_sync(
            saleor_schema(),
            document,
            root_value=lists(shop),
            variable_values={"first": 1, "after": None},
        )
        assert not result.errors, result.errors
        assert result.data is not None
        nodes[field] = result.data[field]["edges"][0]["node"]
    return nodes


MARK = "@@{}@@"


def node_format(field: str, template: JSON) -> str:
    """The template node as a `%`-format string of its JSON: each object is then one string
    substitution, so the simulator stays far cheaper than any importer reading it."""
    node = copy.deepcopy(template)
    m = MARK.format
    if field == "customers":
        node.update(id=m("id"), email=m("own_email"), dateJoined=m("created"))
        node.update(updatedAt=m("created"), firstName=m("first"), lastName=m("last"))
    elif field == "orders":
        node.update(id=m("id"), number=m("n"), created=m("created"), updatedAt=m("created"))
        node.update(userEmail=m("email"), checkoutId=None)
        node["user"] = {**node["user"], "id": m("buyer_id"), "email": m("email")}
        for i, line in enumerate(node["lines"]):
            line["id"] = m(f"line{i}")
    else:
        node.update(id=m("id"), token=m("token"), created=m("created"))
        node.update(updatedAt=m("created"), email=m("email"))
        node["user"] = {**node["user"], "id": m("buyer_id"), "email": m("email")}
    text = json.dumps({"node": node}, separators=(",", ":")).replace("%", "%%")
    return re.sub(r"@@(\w+)@@", r"%(\1)s", text)


def node_values(field: str, n: int, customers: int, lines: int) -> dict[str, str]:
    """The n-th object's own identity and time (1-based)."""
    buyer = (n % max(customers, 1)) + 1
    values = {
        "id": gid({"customers": "User", "orders": "Order"}.get(field, "Checkout"), n),
        "n": str(n),
        "created": iso(START + timedelta(seconds=n * 60)),
        "email": f"buyer{buyer}@example.com",
        "own_email": f"buyer{n}@example.com",
        "buyer_id": gid("User", buyer),
        "first": f"First{n}",
        "last": f"Last{n}",
        "token": f"tok-{n}",
    }
    for i in range(lines):
        values[f"line{i}"] = gid("OrderLine", n * 10 + i)
    return values


class Lists:
    def __init__(self, orders: int, customers: int, checkouts: int) -> None:
        self.templates = templates()
        self.formats = {f: node_format(f, t) for f, t in self.templates.items()}
        self.lines = {f: len(t.get("lines") or []) for f, t in self.templates.items()}
        self.counts = {"orders": orders, "customers": customers, "checkouts": checkouts}
        self.customers = customers
        self.valid: set[str] = set()

    def node(self, field: str, n: int) -> JSON:
        """The n-th object of a list, decoded (for tests of the simulator itself)."""
        edge: JSON = json.loads(self.edge(field, n))
        return dict(edge["node"])

    def edge(self, field: str, n: int) -> str:
        values = node_values(field, n, self.customers, self.lines[field])
        return self.formats[field] % values

    def answer(self, body: JSON) -> tuple[int, bytes]:
        query = body.get("query", "")
        if query not in self.valid:
            errors = validate(saleor_schema(), parse(query))
            if errors:
                return 400, json.dumps(
                    {"errors": [{"message": e.message} for e in errors]}
                ).encode()
            self.valid.add(query)
        operation = next((op for op in FIELDS if f"query {op}(" in query), None)
        if operation is None:
            return 200, b'{"data": {"app": {"id": "QXBwOjQy"}}}'
        field = FIELDS[operation]
        variables = body.get("variables") or {}
        first = int(variables.get("first") or 0)
        if not 0 < first <= 100:
            message = f"Requesting {first} records on the `{field}` connection exceeds the limit."
            return 200, json.dumps(
                {"data": {field: None}, "errors": [{"message": message}]}
            ).encode()
        after = variables.get("after")
        start = int(base64.b64decode(after).decode()) if after else 0
        total = self.counts[field]
        end = min(start + first, total)
        edges = ",".join(self.edge(field, n) for n in range(start + 1, end + 1))
        page_info = {
            "hasNextPage": end < total,
            "endCursor": base64.b64encode(str(end).encode()).decode() if end > start else None,
        }
        head = json.dumps({"totalCount": total, "pageInfo": page_info})[:-1]
        return 200, f'{{"data":{{"{field}":{head},"edges":[{edges}]}}}}}}'.encode()


def serve(port: int, lists_: Lists) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body = lists_.answer(json.loads(raw))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    port, orders, customers, checkouts = (int(a) for a in sys.argv[1:5])
    serve(port, Lists(orders, customers, checkouts))
