"""The wire contract between the edge and the cloud: topics and payloads,
defined once and imported by both sides. Versioned: `contract.v1`."""
