"""The only modules that import faust, aiokafka or kafka-python: app, topics, broker, feed, worker."""
