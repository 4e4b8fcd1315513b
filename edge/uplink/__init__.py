"""edge.uplink: the link to the cloud over MQTT (contract v1): outbox, MQTT client shell, downlink."""
