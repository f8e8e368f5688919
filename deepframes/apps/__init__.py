"""Applications built on the deepframes library: the demo job and, later, the breed study."""
