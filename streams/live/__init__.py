"""The live runtime: the Faust worker and the adapters around the engine (readers, table store, outbox,
HTTP views, gauges, health, bounded shutdown)."""
