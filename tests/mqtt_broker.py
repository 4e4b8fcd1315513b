"""The tests' broker: the simulator's real Mosquitto (simulator/broker.py)."""

from simulator.broker import ACL_FILE, MosquittoBroker, TlsFiles, find_mosquitto, free_port  # noqa: F401
