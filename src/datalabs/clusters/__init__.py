"""Compute clusters a lab or run can be placed on (DESIGN §1): configured in `[[clusters]]`."""
