"""Money on the wire: an integer number of minor units (fen, cents) and an ISO 4217 code."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Money(BaseModel):
    model_config = {"frozen": True}

    amount: int = Field(ge=0, description="Integer minor units (e.g. fen): 12345 means CNY 123.45")
    currency: str = Field(default="CNY", pattern="^[A-Z]{3}$", description="ISO 4217 currency code")
