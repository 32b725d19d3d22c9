//! SMTP session tracking (to be written).
