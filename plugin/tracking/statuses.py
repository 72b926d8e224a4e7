"""One normalised status set for every carrier, modelled on AfterShip's tags.

Carriers speak their own codes; adapters map them here so that timeline entries, staff
alerts, analytics and the polling schedule need to know only these nine values.
"""

from __future__ import annotations

import enum
import re


class Status(enum.StrEnum):
    PENDING = "Pending"
    INFO_RECEIVED = "InfoReceived"
    IN_TRANSIT = "InTransit"
    OUT_FOR_DELIVERY = "OutForDelivery"
    ATTEMPT_FAIL = "AttemptFail"
    AVAILABLE_FOR_PICKUP = "AvailableForPickup"
    DELIVERED = "Delivered"
    EXCEPTION = "Exception"
    EXPIRED = "Expired"

    @property
    def snake(self) -> str:
        """`OutForDelivery` → `out_for_delivery` (timeline kinds are `shipment_<snake>`)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.value).lower()

    @property
    def is_final(self) -> bool:
        """Nothing more will happen to the parcel: polling stops."""
        return self in FINAL


# Exception is not final: a parcel held at customs moves again; Expired means the carrier
# stopped reporting (AfterShip: no update for 30 days).
FINAL = frozenset({Status.DELIVERED, Status.EXPIRED})

# Sub-status of a parcel on its way back to the shop (AfterShip's Exception_011).
RETURNED_TO_SENDER = "Exception_011"


def parse_status(value: str) -> Status:
    """A status given by name (`OutForDelivery`) or snake case (`out_for_delivery`)."""
    text = value.strip()
    for status in Status:
        if text in (status.value, status.snake, status.name):
            return status
    raise ValueError(f"unknown shipment status {value!r}; one of {', '.join(Status)}")
