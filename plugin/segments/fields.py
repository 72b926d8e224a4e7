"""The profile fields a segment rule can test, their kinds and the operators each kind takes.

Semantics shared by the SQL compiler and the single-profile evaluator (they must agree):
- a missing value (NULL) satisfies no comparison; `ne` and `not_in` are the negations of
  `eq` and `in`, so a customer without a city is "not in Paris";
- text compares exactly (cities are stored title-cased, e-mails lower-cased, countries as
  ISO codes); `contains` and `starts_with` are case-sensitive too;
- `between` includes both ends; dates: `before` / `after` are strict;
- `days_since_*` fields count days from a date to now: `gte 90` means "90 days or more";
- `tags` tests the staff-given labels: `has` one tag, `has_any` / `has_none` of a list,
  `is_set` any tag at all;
- consent flags are true when an identity of that kind (e-mail, phone) has granted
  marketing consent: the list of who may receive a campaign.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FieldKind(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    MONEY = "money"
    DATE = "date"
    DAYS = "days"  # days elapsed since a date column
    FLAG = "flag"
    TAGS = "tags"


OPERATORS: dict[FieldKind, tuple[str, ...]] = {
    FieldKind.TEXT: ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_not_set"),
    FieldKind.NUMBER: ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    FieldKind.MONEY: ("eq", "ne", "gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    FieldKind.DATE: ("before", "after", "between", "is_set", "is_not_set"),
    FieldKind.DAYS: ("gt", "gte", "lt", "lte", "between", "is_set", "is_not_set"),
    FieldKind.FLAG: ("is_true", "is_false"),
    FieldKind.TAGS: ("has", "has_any", "has_none", "is_set", "is_not_set"),
}

# Columns stored as binary floats: both evaluators compare them as floats.
FLOAT_COLUMNS = frozenset({"average_days_between_orders", "p_alive", "predicted_orders_12m"})
# Flags that are not profile columns: marketing consent of one identity kind.
CONSENT_FLAGS = {"email_consent": "email", "sms_consent": "phone"}


@dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    column: str  # the Profile attribute it reads
    label: str
    operators: tuple[str, ...] = ()  # empty: every operator of its kind

    @property
    def is_float(self) -> bool:
        """Stored as a binary float: both evaluators compare as floats."""
        return self.column in FLOAT_COLUMNS


def _fields(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


FIELDS: dict[str, Field] = _fields(
    Field("email", FieldKind.TEXT, "email", "e-mail"),
    Field("phone", FieldKind.TEXT, "phone", "phone"),
    Field("first_name", FieldKind.TEXT, "first_name", "first name"),
    Field("last_name", FieldKind.TEXT, "last_name", "last name"),
    Field("city", FieldKind.TEXT, "city", "city"),
    Field("country", FieldKind.TEXT, "country", "country"),
    Field("language", FieldKind.TEXT, "language", "language"),
    Field("currency", FieldKind.TEXT, "currency", "main currency"),
    Field("utm_source", FieldKind.TEXT, "utm_source", "first-touch source"),
    Field("utm_medium", FieldKind.TEXT, "utm_medium", "first-touch medium"),
    Field("utm_campaign", FieldKind.TEXT, "utm_campaign", "first-touch campaign"),
    Field("utm_term", FieldKind.TEXT, "utm_term", "first-touch term"),
    Field("utm_content", FieldKind.TEXT, "utm_content", "first-touch content"),
    Field("referrer", FieldKind.TEXT, "referrer", "first-touch referrer"),
    Field("orders_count", FieldKind.NUMBER, "orders_count", "orders"),
    Field("paid_orders_count", FieldKind.NUMBER, "paid_orders_count", "paid orders"),
    Field("cancelled_orders_count", FieldKind.NUMBER, "cancelled_orders_count", "cancelled orders"),
    Field("refunded_orders_count", FieldKind.NUMBER, "refunded_orders_count", "refunded orders"),
    Field(
        "average_days_between_orders",
        FieldKind.NUMBER,
        "average_days_between_orders",
        "average days between orders",
    ),
    Field("total_spent", FieldKind.MONEY, "total_spent", "total spent"),
    Field("average_order_value", FieldKind.MONEY, "average_order_value", "average check"),
    Field("date_joined", FieldKind.DATE, "date_joined", "registered"),
    Field("first_order_at", FieldKind.DATE, "first_order_at", "first order"),
    Field("last_order_at", FieldKind.DATE, "last_order_at", "last order"),
    Field("last_checkout_at", FieldKind.DATE, "last_checkout_at", "last checkout activity"),
    Field("days_since_last_order", FieldKind.DAYS, "last_order_at", "days since last order"),
    Field("days_since_first_order", FieldKind.DAYS, "first_order_at", "days since first order"),
    Field("days_since_joined", FieldKind.DAYS, "date_joined", "days since registering"),
    Field("rfm_recency", FieldKind.NUMBER, "rfm_recency", "RFM recency score"),
    Field("rfm_frequency", FieldKind.NUMBER, "rfm_frequency", "RFM frequency score"),
    Field("rfm_monetary", FieldKind.NUMBER, "rfm_monetary", "RFM monetary score"),
    Field("rfm_cell", FieldKind.TEXT, "rfm_cell", "RFM cell"),
    Field("channel", FieldKind.TEXT, "channel", "sales channel"),
    Field("score", FieldKind.NUMBER, "score", "customer score"),
    Field("p_alive", FieldKind.NUMBER, "p_alive", "probability still active"),
    Field(
        "predicted_orders_12m", FieldKind.NUMBER, "predicted_orders_12m", "expected orders (12 m)"
    ),
    Field("predicted_value_12m", FieldKind.MONEY, "predicted_value_12m", "expected value (12 m)"),
    Field(
        "predicted_next_order_at",
        FieldKind.DATE,
        "predicted_next_order_at",
        "expected next order",
    ),
    Field("tags", FieldKind.TAGS, "tags", "tags"),
    Field("email_consent", FieldKind.FLAG, "email_consent", "e-mail marketing consent"),
    Field("sms_consent", FieldKind.FLAG, "sms_consent", "SMS marketing consent"),
    Field("is_active", FieldKind.FLAG, "is_active", "account active"),
    Field("has_account", FieldKind.FLAG, "saleor_user_id", "has a Saleor account"),
)
