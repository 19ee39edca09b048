//! Each kind's wire format, rendered from an `Event` (pure: no IO, no clock).
