"""The ingest gateway (``churnwatch ingest``): Segment-compatible tracking, Stripe and helpdesk webhooks.

A stateless HTTP process (aiohttp) that verifies each request, maps it to canonical events
(:mod:`streams.events`) and produces them with an idempotent, ``acks=all`` producer; it answers 2xx only
after Kafka acknowledged every event of the request. See docs/ingest.md.
"""
