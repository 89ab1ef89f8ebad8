//! Executors that carry out planned actions: Kubernetes, webhooks and Kafka publishing.
