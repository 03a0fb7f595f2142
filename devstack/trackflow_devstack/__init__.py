"""trackflow's local stack, for development only: the embedded AWS emulator (moto with the
fixes that make it behave as AWS does) and the runner behind `trackflow up` and `make run`.

No production role imports this package; the production image does not install it.
"""
