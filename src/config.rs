//! The `reflex run` configuration file and its defaults.
