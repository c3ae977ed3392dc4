"""kind node images made on this machine, since none can be pulled here."""
