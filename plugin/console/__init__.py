"""Building blocks of the `crm` command line: look-ups with clear refusals, progress."""
