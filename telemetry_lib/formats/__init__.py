"""Wire encodings shared by drivers: pure functions, no I/O."""
