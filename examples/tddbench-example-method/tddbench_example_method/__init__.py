"""Example TDD-Bench method plugin: `median_length` is a valid adapter, `broken` breaks the contract."""
