"""The embedded mini benchmark: small datasets written in the real on-disk formats, so that
bench's real readers are what the tests and `bench demo` exercise."""
