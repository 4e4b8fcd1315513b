"""The one OCPP 1.6J charge point simulator, for tests, the benchmark and the demo."""

from simulator.charge_point import SimulatedChargePoint, utcnow
from simulator.connector import ConnectorState
from simulator.session import NotConnected

__all__ = ["ConnectorState", "NotConnected", "SimulatedChargePoint", "utcnow"]
