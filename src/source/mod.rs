//! The Kafka consumer that feeds decoded events into the engine (at-least-once offset handling).
