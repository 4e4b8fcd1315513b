"""The base of every config table: strict and immutable."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # A typo in a key ("hearbeat_interval") must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)
