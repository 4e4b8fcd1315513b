"""A simulated OCPP 2.0.1 charging station (see docs/simulator.md)."""

from simulator.v201.station import SimulatedStation

__all__ = ["SimulatedStation"]
