"""Dev tools: the customer-base simulator and shapes, the demo, a local Kafka broker, a test producer."""
