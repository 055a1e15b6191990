"""Publishers: one module per driver, the contract in :mod:`.base`."""
